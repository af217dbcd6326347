"""tools/deployment/onnx_sweep.py: which recipes it exports for which (one per code path, the
smallest backbone), resuming from its results file, and the table's row per recipe."""

import importlib.util
import json
import os.path as osp

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FPN = [f'configs/biformer/fpn_biformer-{a}_8xb4-80k_ade20k-512x512.py' for a in 'bst']
UPERNET_T = 'configs/biformer/upernet_biformer-t_8xb2-160k_ade20k-512x512.py'


def _tool():
    path = osp.join(ROOT, 'tools', 'deployment', 'onnx_sweep.py')
    spec = importlib.util.spec_from_file_location('onnx_sweep_tool', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_code_path_separates_heads_and_ops_not_sizes():
    tool = _tool()

    def key(name):
        return tool.code_path(Config.fromfile(osp.join(ROOT, name)))

    assert key(FPN[0]) == key(FPN[2])  # BiFormer-B and -T: other depths and widths
    assert key(FPN[2]) != key(UPERNET_T)  # another neck and head
    agent = key('configs/comparison/fpn_pvt-s-agent_8xb2-40k_ade20k-512x512.py')
    bra = key('configs/comparison/fpn_pvt-s-bra_8xb2-40k_ade20k-512x512.py')
    assert agent != bra and 'mmattn.AgentAttention' in agent[2]  # one skeleton, other ops


def test_exports_the_smallest_per_code_path_and_resumes(tmp_path, capsys):
    tool = _tool()
    recipes = [osp.join(ROOT, p) for p in FPN + [UPERNET_T]]
    rep = tool.pick_representatives(recipes)
    t = osp.join(ROOT, FPN[2])
    assert rep == {recipes[0]: t, recipes[1]: t, recipes[2]: t, recipes[3]: recipes[3]}

    results = tmp_path / 'sweep.jsonl'
    line = json.dumps(dict(recipe=FPN[2], mode='tensor', cell='ok (x)'))
    results.write_text(line + '\n' + line[:20])  # the last line cut short by a crash: skipped
    out = str(tmp_path / 'sweep.md')
    tool.main(recipes + ['--out', out, '--one-per-code-path', '--list'])
    listed = capsys.readouterr().out.splitlines()
    assert listed[:-1] == [f'{FPN[2]} end2end', f'{UPERNET_T} tensor', f'{UPERNET_T} end2end']
    assert listed[-1].startswith('3 exports for 4 recipes (1 cells done before)')

    tool.write_table(out, recipes, ['tensor', 'end2end'], rep, tool.load_results(str(results)))
    rows = {r.split(' | ')[0][2:]: r for r in open(out).read().splitlines()[2:]}
    assert len(rows) == 4
    assert f'as `{FPN[2]}`' in rows[FPN[0]] and 'not exported' in rows[FPN[0]]
    assert rows[FPN[2]].endswith('| ok (x) | not run |')
    assert rows[UPERNET_T].endswith('| not run | not run |')


def test_cells_tell_ok_from_differs_and_near_ties():
    """A detector cell is ok on the issue's criteria (or a sliver box's coordinates), a
    near-tie only when PyTorch itself, under input noise far below one grey level, moves at
    least as far as the file, and DIFFERS otherwise."""
    cell = _tool().format_cell
    good = dict(boxes=10, matched=10, extra=0, min_iou=0.9995, max_coord_diff=1e-4)

    def res(row, noise=None):
        out = dict(rows=[row], fixed=[], export_s=1.0)
        return dict(out, noise=[noise]) if noise else out

    assert cell(res(good), 0.3).startswith('ok')
    sliver = dict(good, min_iou=0.989, max_coord_diff=1e-3)  # a box 0.03 px high
    assert cell(res(sliver), 0.3).startswith('ok')
    swapped = dict(good, min_iou=0.52, max_coord_diff=26.8)
    assert cell(res(swapped), 0.3).startswith('DIFFERS')
    assert cell(res(swapped, good), 0.3).startswith('DIFFERS')  # PyTorch is stable there
    assert cell(res(swapped, dict(good, min_iou=0.51)), 0.3).startswith('near-tie')
    missing = dict(swapped, matched=9)
    assert cell(res(missing, dict(good, min_iou=0.0)), 0.3).startswith('DIFFERS')
    masks = dict(good, min_mask_iou=0.7)
    assert cell(res(masks, dict(good, min_mask_iou=0.9)), 0.3).startswith('DIFFERS')
    assert cell(res(masks, dict(good, min_mask_iou=0.6)), 0.3).startswith('near-tie')
    seg = dict(rows=[dict(equal_pixels=0.99, classes=7)], fixed=[], export_s=1.0)
    assert cell(seg, 0.3).startswith('DIFFERS') and 'classes in the map 7' in cell(seg, 0.3)


def test_recheck_adds_pytorchs_own_movement_to_old_cells(tmp_path, monkeypatch):
    """--recheck-differs measures only PyTorch's movement (no export) for a detector cell that
    differs and was stored without it, and rewrites that cell."""
    tool = _tool()
    recipe = 'configs/biformer/retinanet_biformer-t_fpn_1x_coco.py'
    swapped = dict(boxes=10, matched=10, extra=0, min_iou=0.52, max_coord_diff=26.8)
    old = dict(rows=[swapped], fixed=[], export_s=1.0)
    results = tmp_path / 'sweep.jsonl'
    cell = tool.format_cell(old, 0.3)
    results.write_text(json.dumps(dict(recipe=recipe, mode='end2end', cell=cell, result=old)))
    calls = []

    def fake_run_one(cfg, mode, shape, timeout, thr, raw, noise_only):
        calls.append((osp.relpath(cfg, ROOT), mode, noise_only))
        raw.append(dict(noise=[dict(swapped, min_iou=0.5)]))

    monkeypatch.setattr(tool, 'run_one', fake_run_one)
    out = str(tmp_path / 'sweep.md')
    tool.main([osp.join(ROOT, recipe), '--out', out, '--modes', 'end2end', '--recheck-differs'])
    assert calls == [(recipe, 'end2end', True)]
    # appended on a line of its own although the old line had no newline
    assert len(results.read_text().splitlines()) == 2
    assert tool.load_results(str(results))[(recipe, 'end2end')].startswith('near-tie')
    assert '| near-tie, PyTorch moves as far by itself' in open(out).read()
