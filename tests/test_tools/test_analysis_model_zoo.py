"""Model-zoo generation: README table parsing, row matching, and the tool end to end."""

import json
import os
import os.path as osp

from mmattn.analysis.model_zoo import match_rows, name_fields, paper_numbers, parse_tables

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

README = """# Demo-Former (CVPR 2099)

Paper results (Table 3 of the paper, https://example.org/paper):

### Mask R-CNN 1x on COCO

| Backbone | Params | FLOPs | box AP | mask AP |
|---|---|---|---|---|
| Demo-T | 31M | 230G | 42.7 | 39.0 |
| Demo-S | 44M | 293G | 44.7 | 40.6 |

### Semantic FPN on ADE20K

| Config | Backbone | Params | mIoU | Source |
|---|---|---|---|---|
| [fpn_demo-s_8xb2-40k_ade20k-512x512](x.py) | Demo-S | 15M | 44.5 | paper Tab. 5 |
"""


def test_name_fields():
    f = name_fields('configs/x/upernet_agent-swin-t_8xb2-160k_ade20k-512x512.py')
    assert (f['head'], f['backbone'], f['schedule']) == ('upernet', 'agent-swin-t', '160k')
    f = name_fields('configs/x/mask-rcnn_agent-swin-t_fpn_ms-crop-3x_coco.py')
    assert (f['head'], f['backbone'], f['schedule']) == ('mask-rcnn', 'agent-swin-t', 'ms-crop-3x')


def test_readme_rows_match_configs():
    tables = parse_tables(README)
    assert [len(t['rows']) for t in tables] == [2, 1]
    info = name_fields('mask-rcnn_demo-s_fpn_1x_coco.py')
    table, row = match_rows(info, tables)
    got = paper_numbers(table, row)
    assert got['metrics'] == {'box AP': '44.7', 'mask AP': '40.6'}
    assert (got['params'], got['flops']) == ('44M', '293G')
    # by file name, wherever the table is
    info = name_fields('fpn_demo-s_8xb2-40k_ade20k-512x512.py')
    got = paper_numbers(*match_rows(info, tables))
    assert got['metrics'] == {'mIoU': '44.5'} and got['source'] == 'paper Tab. 5'
    # no RetinaNet table: no match, rather than a wrong one
    assert match_rows(name_fields('retinanet_demo-s_fpn_1x_coco.py'), tables) is None
    assert match_rows(name_fields('mask-rcnn_demo-b_fpn_1x_coco.py'), tables) is None


def test_variant_lists_and_header_words():
    text = """### Results
| Config | Paper result | Hyper-parameters from | Params (official / mmattn) |
|---|---|---|---|
| `fpn_x-{t,s}_40k_ade20k.py` | mIoU: T 37.2 (unverified) | PVT (AdamW 1e-4) | 15M / 15.3M |
"""
    tables = parse_tables(text)
    got = paper_numbers(*match_rows(name_fields('fpn_x-t_40k_ade20k.py'), tables), variant='t')
    assert got['metrics'] == {'Paper result': '37.2 (unverified)'} and got['params'] == '15M'
    got = paper_numbers(*match_rows(name_fields('fpn_x-s_40k_ade20k.py'), tables), variant='s')
    assert got['metrics'] == {}  # T's number is not shown against S
    assert match_rows(name_fields('fpn_x-b_40k_ade20k.py'), tables) is None


def test_model_zoo_tool(tool, tmp_path):
    root = tmp_path / 'configs'
    (root / 'demo').mkdir(parents=True)
    os.symlink(osp.join(REPO, 'configs', '_base_'), root / '_base_')
    os.symlink(osp.join(REPO, 'configs', 'shapes'), root / 'shapes')
    (root / 'demo' / 'fpn_demo-s_8xb2-40k_ade20k-512x512.py').write_text(
        "_base_ = '../shapes/fpn_r18_shapes.py'\n"
    )
    (root / 'demo' / 'README.md').write_text(README)
    out, cache = tmp_path / 'docs' / 'model_zoo.md', tmp_path / 'cache.json'
    proc = tool(
        'analysis_tools/model_zoo.py',
        '--configs',
        root,
        '--out',
        out,
        '--cache',
        cache,
        '--shape',
        '64',
        '64',
    )
    assert '1 with params/FLOPs, 1 with paper metrics' in proc.stdout
    text = out.read_text()
    assert '## Demo-Former (CVPR 2099)' in text
    row = next(line for line in text.splitlines() if 'fpn_demo-s' in line)
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1:4] == ['Semantic FPN', 'demo-s', '40k']
    assert cells[4] == '3.2M'  # the narrow ResNet-18 Semantic FPN of configs/shapes
    assert cells[6:] == ['15M', '—', '44.5']
    entry = json.loads(cache.read_text())
    assert len(entry) == 1 and next(iter(entry.values()))['shape'] == [64, 64]
    # a second run reuses the cache (no tracing) and gives the same file
    tool(
        'analysis_tools/model_zoo.py',
        '--configs',
        root,
        '--out',
        out,
        '--cache',
        cache,
        '--shape',
        '64',
        '64',
        '--no-compute',
    )
    assert out.read_text() == text
