"""OpenMMLab model-index metafiles (``configs/<family>/metafile.yml`` + ``model-index.yml``).

Everything comes from what the repository already holds, so the metafiles cannot drift:

* the family (a folder under ``configs/`` with a ``README.md``): the Collection's name is the
  README's title, the paper's URL its first arXiv (or other non-GitHub) link, the code's URL
  its first GitHub link, the paper's title and BibTeX key its first BibTeX entry;
* each recipe: task, head, backbone, schedule and data from the config and its name
  (:mod:`mmattn.analysis.model_zoo`), epochs or iterations from ``train_cfg``;
* params and FLOPs: the model zoo's cache (``docs/model_zoo_complexity.json``, counted by
  ``get_flops`` at the papers' input sizes), used only when its key still matches the config;
* results: the papers' numbers matched in the README tables (the same rows as
  ``docs/model_zoo.md``), marked ``Source: paper``; we trained none of these recipes.

A new family needs no code here: a folder with recipes and a README (title, paper link, code
link, BibTeX), its rows in the zoo cache (``tools/analysis_tools/model_zoo.py``), then
``tools/analysis_tools/metafiles.py``.
"""

import os.path as osp
import re
from typing import Dict, List, Optional

import yaml

from .model_zoo import (
    HEADS,
    complexity,
    describe,
    discover_configs,
    load_cache,
    match_rows,
    paper_numbers,
    parse_tables,
    readme_title,
)

DATASETS = {
    'coco': 'COCO',
    'ade20k': 'ADE20K',
    'voc12aug': 'PASCAL VOC 2012 + Aug',
    'voc12': 'PASCAL VOC 2012',
    'shapes': 'shapes (bundled)',
}
BIBTEX_RE = re.compile(r'@\w+\s*\{\s*([^,\s]+)\s*,')


def families(configs_root: str = 'configs') -> Dict[str, List[str]]:
    """``{folder: [recipe paths]}`` of the method folders that have a README (the paper's).

    ``configs/comparison`` (our controlled study, no paper), ``configs/plugins`` (the ops of
    the families inside mmdet/mmseg CNN recipes; its README cites mmattn and the hosts) and
    ``configs/shapes`` are not families.
    """
    return {
        name: paths
        for name, paths in discover_configs(configs_root).items()
        if name != 'plugins' and osp.isfile(osp.join(configs_root, name, 'README.md'))
    }


def bibtex_keys(text: str) -> List[str]:
    """The keys of the BibTeX entries in a README (``han2024agent``), in order."""
    return BIBTEX_RE.findall(text)


def readme_facts(text: str, folder: str) -> dict:
    """Collection facts of a family README (see the module docstring)."""
    links = re.findall(r'https?://[^\s)>\]]+', text)
    code = next((u for u in links if 'github.com' in u), None)
    paper = next((u for u in links if 'arxiv.org' in u), None) or next(
        (u for u in links if 'github.com' not in u), None
    )
    keys = bibtex_keys(text)
    title = None
    if keys:
        entry = text[text.index(keys[0]) :]
        m = re.search(r'title\s*=\s*\{(.+?)\},?\s*\n', entry)
        title = m.group(1).strip() if m else None
    return dict(
        name=readme_title(text, folder),
        paper_url=paper,
        code_url=code,
        paper_title=title,
        bibtex_key=keys[0] if keys else None,
    )


def dataset_of(data_field: str) -> str:
    """``'ade20k-512x512'`` -> ``'ADE20K'`` (the last field of a config name)."""
    key = data_field.split('-')[0]
    if key not in DATASETS:
        raise ValueError(
            f'unknown dataset {data_field!r} in a config name; add it to '
            f'mmattn.analysis.metafiles.DATASETS'
        )
    return DATASETS[key]


def head_name(head: str) -> str:
    """``'mask-rcnn'`` -> ``'Mask R-CNN'`` (the config name's first field)."""
    extra = {'cascade-mask-rcnn': 'Cascade Mask R-CNN'}
    return extra.get(head) or HEADS.get(head, (head,))[0]


def _number(cell: str) -> Optional[float]:
    m = re.match(r'\s*(\d+(?:\.\d+)?)', cell)
    return float(m.group(1)) if m else None


def task_of_metric(name: str, task: str) -> str:
    """The model-index task of a README metric column (``box AP`` -> Object Detection)."""
    low = name.lower()
    if task == 'seg':
        return 'Semantic Segmentation'
    if 'mask' in low or re.search(r'ap\^?\{?m|segm', low):
        return 'Instance Segmentation'
    return 'Object Detection'


def results(paper: dict, task: str, dataset: str) -> List[dict]:
    """Model-index ``Results`` from a README row's metrics, grouped by task."""
    by_task: Dict[str, dict] = {}
    for name, cell in paper['metrics'].items():
        value = _number(cell)
        if value is None:
            continue
        metrics = by_task.setdefault(task_of_metric(name, task), {})
        metrics[name] = value
        ms = re.search(r'(\d+(?:\.\d+)?)\s*MS\b', cell)  # "49.8 (50.8 MS)": multi-scale + flip
        if ms:
            metrics[f'{name} (MS)'] = float(ms.group(1))
    return [dict(Task=t, Dataset=dataset, Metrics=m, Source='paper') for t, m in by_task.items()]


def model_entry(
    path: str, cfg, info: dict, collection: str, paper: dict, cx: Optional[dict]
) -> dict:
    dataset = dataset_of(info['data'])
    meta = {'Training Data': dataset}
    train_cfg = cfg.get('train_cfg', {}) or {}
    if train_cfg.get('max_epochs'):
        meta['Epochs'] = int(train_cfg['max_epochs'])
    elif train_cfg.get('max_iters'):
        meta['Iterations'] = int(train_cfg['max_iters'])
    m = re.search(r'(\d+)xb(\d+)', info['stem'])
    if m:
        meta['Batch Size'] = int(m.group(1)) * int(m.group(2))
    if cx:
        meta['Parameters'] = int(cx['params'])
        if cx.get('flops') is not None:
            meta['FLOPs'] = int(cx['flops'])
            meta['FLOPs Input'] = 'x'.join(str(s) for s in cx['shape'])
    meta['Architecture'] = [info['backbone_type'], head_name(info['head'])]
    entry = {'Name': info['stem'], 'In Collection': collection, 'Config': path, 'Metadata': meta}
    res = results(paper, info['task'], dataset)
    if res:
        entry['Results'] = res
    return entry


def build_metafiles(
    configs_root: str = 'configs', cache_path: str = 'docs/model_zoo_complexity.json'
) -> Dict[str, dict]:
    """``{metafile path: content}`` for every family (nothing is traced: zoo cache only)."""
    from mmengine.config import Config

    cache = load_cache(cache_path)
    out = {}
    for folder, paths in families(configs_root).items():
        readme = osp.join(configs_root, folder, 'README.md')
        with open(readme, encoding='utf-8') as f:
            text = f.read()
        facts = readme_facts(text, folder)
        tables = parse_tables(text)
        models, archs = [], []
        for path in paths:
            cfg = Config.fromfile(path)
            info = describe(path, cfg)
            found = match_rows(info, tables)
            variant = info['backbone'].rsplit('-', 1)[-1] if '-' in info['backbone'] else ''
            paper = paper_numbers(*found, variant=variant) if found else dict(metrics={})
            cx = complexity(path, cache, compute=False, cfg=cfg)
            entry = model_entry(path.replace(osp.sep, '/'), cfg, info, facts['name'], paper, cx)
            models.append(entry)
            archs += entry['Metadata']['Architecture']
        collection = {
            'Name': facts['name'],
            'Metadata': {'Architecture': sorted(set(archs))},
            'README': readme.replace(osp.sep, '/'),
        }
        if facts['paper_url']:
            collection['Paper'] = {
                'URL': facts['paper_url'],
                'Title': facts['paper_title'] or facts['name'],
            }
        if facts['code_url']:
            collection['Code'] = {'URL': facts['code_url']}
        if facts['bibtex_key']:
            collection['BibTeX Key'] = facts['bibtex_key']
        out[osp.join(configs_root, folder, 'metafile.yml').replace(osp.sep, '/')] = {
            'Collections': [collection],
            'Models': models,
        }
    return out


CITATION_RE = re.compile(r'^# Citation: .*\n', re.M)


def citation_line(key: str, readme: str) -> str:
    """The first line of every recipe: which BibTeX entry a config alone says to cite."""
    return f'# Citation: {key} (BibTeX in {readme})\n'


def with_citation(text: str, line: str) -> str:
    """``text`` with ``line`` as its first line (replacing an older citation line)."""
    return line + CITATION_RE.sub('', text, count=1)


def citation_files(configs_root: str = 'configs') -> Dict[str, str]:
    """``{recipe path: its text with the citation line}`` for every family recipe."""
    out = {}
    for folder, paths in families(configs_root).items():
        readme = osp.join(configs_root, folder, 'README.md')
        with open(readme, encoding='utf-8') as f:
            keys = bibtex_keys(f.read())
        if not keys:
            raise ValueError(
                f"{readme} has no BibTeX entry; add the paper's @...{{key, ...}} "
                f'in a ```bibtex block'
            )
        line = citation_line(keys[0], readme.replace(osp.sep, '/'))
        for path in paths:
            with open(path, encoding='utf-8') as f:
                out[path.replace(osp.sep, '/')] = with_citation(f.read(), line)
    return out


HEADER = (
    "# Generated by tools/analysis_tools/metafiles.py from the configs, this folder's "
    'README and\n# docs/model_zoo_complexity.json; do not edit by hand. Results are the '
    "paper's (Source: paper).\n"
)


def dump(content: dict) -> str:
    return HEADER + yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100)


def model_index(metafiles: List[str]) -> str:
    return (
        '# OpenMMLab model index (mim): one metafile per family; see '
        'tools/analysis_tools/metafiles.py.\n'
        + yaml.safe_dump({'Import': sorted(metafiles)}, sort_keys=False)
    )
