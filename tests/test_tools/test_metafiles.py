"""OpenMMLab metafiles (configs/<family>/metafile.yml, model-index.yml) and the recipes' citation
lines: complete, pointing at real files, and in agreement with the model zoo and our counter.

The full regeneration (``tools/analysis_tools/metafiles.py --check``) loads every recipe, about
a CPU-minute; the checks here read files only, plus one cheap model for the parameter count.
"""

import functools
import json
import os.path as osp

import yaml
from mmengine.config import Config

from mmattn.analysis.metafiles import (
    bibtex_keys,
    citation_line,
    dataset_of,
    families,
    readme_facts,
    results,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@functools.lru_cache(maxsize=None)
def _load(path):
    with open(osp.join(REPO, path), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _all_models():
    index = _load('model-index.yml')
    return {m['Config']: (meta, m) for meta in index['Import'] for m in _load(meta)['Models']}


def test_every_family_recipe_is_listed_and_every_listed_config_exists():
    fams = families(osp.join(REPO, 'configs'))
    assert len(fams) >= 5
    index = _load('model-index.yml')
    assert sorted(index['Import']) == sorted(f'configs/{f}/metafile.yml' for f in fams), (
        'run python tools/analysis_tools/metafiles.py'
    )
    models = _all_models()
    recipes = {osp.relpath(p, REPO) for paths in fams.values() for p in paths}
    assert set(models) == recipes, (sorted(recipes - set(models)), sorted(set(models) - recipes))
    for config, (meta, model) in models.items():
        assert osp.isfile(osp.join(REPO, config)), config
        assert osp.dirname(config) == osp.dirname(meta), (config, meta)
        assert model['Name'] == osp.splitext(osp.basename(config))[0]
        content = _load(meta)
        assert model['In Collection'] in [c['Name'] for c in content['Collections']]
        md = model['Metadata']
        assert md['Training Data'] and ('Epochs' in md or 'Iterations' in md), config


def test_collections_have_paper_code_and_architecture():
    for meta in _load('model-index.yml')['Import']:
        for col in _load(meta)['Collections']:
            assert col['Paper']['URL'].startswith('https://') and col['Paper']['Title'], meta
            assert 'github.com' in col['Code']['URL'], meta
            assert col['Metadata']['Architecture'], meta
            assert osp.isfile(osp.join(REPO, col['README'])), meta


def test_params_and_flops_are_the_zoo_s():
    """Every listed model's Parameters/FLOPs equal docs/model_zoo_complexity.json's (which
    tests/test_tools/test_analysis_model_zoo.py keeps in step with the configs)."""
    with open(osp.join(REPO, 'docs', 'model_zoo_complexity.json')) as f:
        zoo = json.load(f)
    models = _all_models()
    counted = 0
    for config, (_, model) in models.items():
        md = model['Metadata']
        if 'Parameters' not in md:  # the zoo's entry is stale (its model key differs): omitted
            assert 'FLOPs' not in md, config
            continue
        counted += 1
        assert md['Parameters'] == zoo[config]['params'], config
        if zoo[config]['flops'] is None:  # the zoo has not traced it yet: no FLOPs listed
            assert 'FLOPs' not in md, config
            continue
        assert md['FLOPs'] == zoo[config]['flops'], config
        assert md['FLOPs Input'] == 'x'.join(map(str, zoo[config]['shape'])), config
    assert counted >= len(models) - 2, (counted, len(models))


def test_params_agree_with_our_counter():
    """One whole model built and counted now (the smallest Semantic FPN): same as listed."""
    from mmattn.analysis.flops import build_model_from_cfg, count_params

    config = 'configs/flatten/fpn_flatten-pvtv2-b0_8xb4-40k_ade20k-512x512.py'
    model = build_model_from_cfg(Config.fromfile(osp.join(REPO, config)))
    assert _all_models()[config][1]['Metadata']['Parameters'] == count_params(model)


def test_paper_results_are_marked_and_parsed():
    models = _all_models()
    res = models['configs/biformer/upernet_biformer-s_8xb2-160k_ade20k-512x512.py'][1]['Results']
    # README cell "49.8 (50.8 MS)": single-scale and the multi-scale + flip number
    assert res == [
        dict(
            Task='Semantic Segmentation',
            Dataset='ADE20K',
            Source='paper',
            Metrics={'mIoU': 49.8, 'mIoU (MS)': 50.8},
        )
    ]
    res = models['configs/agent_attention/mask-rcnn_agent-pvt-t_fpn_1x_coco.py'][1]['Results']
    assert {r['Task']: r['Metrics'] for r in res} == {
        'Object Detection': {'box AP': 41.4},
        'Instance Segmentation': {'mask AP': 38.7},
    }
    assert all(r['Source'] == 'paper' for _, m in models.values() for r in m.get('Results', []))
    assert results(dict(metrics={'mIoU': 'n/a'}), 'seg', 'ADE20K') == []
    assert dataset_of('voc12aug-512x512') == 'PASCAL VOC 2012 + Aug'


def test_every_recipe_names_its_paper_bibtex_key():
    for folder, paths in families(osp.join(REPO, 'configs')).items():
        readme = f'configs/{folder}/README.md'
        with open(osp.join(REPO, readme), encoding='utf-8') as f:
            text = f.read()
        key = bibtex_keys(text)[0]
        assert readme_facts(text, folder)['bibtex_key'] == key
        line = citation_line(key, readme)
        for path in paths:
            with open(path, encoding='utf-8') as f:
                first = f.readline()
            assert first == line, (path, first, 'run python tools/analysis_tools/metafiles.py')
