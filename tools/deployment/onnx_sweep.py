"""Export recipes to ONNX and write a table of the outcome.

    python tools/deployment/onnx_sweep.py configs/biformer configs/comparison/fpn_x.py \
        --out work_dirs/onnx_sweep.md [--modes tensor end2end] [--shape 160 160] [--jobs 2] \
        [--one-per-code-path] [--results work_dirs/onnx_sweep.jsonl]

Arguments are config files or folders (every ``*.py`` in them). Random weights (the outputs
are compared, not the accuracy); each exported file is run in onnxruntime at the export size
(batch 1) and at (H + 32, W - 32) (batch 3). A cell is ``ok (difference)`` or the reason it
failed: tensor mode, the largest relative difference; a segmentor end to end, the share of
equal pixels and the classes in the map; a detector end to end, the ``test_step`` boxes above
``--det-score-thr`` matched one to one, with the worst IoU and coordinate difference. For the
end-to-end checks the random heads' scores are spread first (``spread_seg_logits``,
``spread_det_scores``): with MMDetection's and MMSegmentation's inits one class wins every
pixel and no box scores 0.3, which would leave nothing to compare. One recipe and mode per
process, so that a crash or a time-out is one cell.

Each finished cell is appended to ``--results`` (JSON lines) at once; a second run with the
same file skips the cells already there, so an interrupted sweep resumes and several runs add
up to one table. ``--one-per-code-path`` exports, of the recipes whose models have the same
code path (model type, backbone type, the op types inside the backbone, neck and head types:
they differ only in depth, width, arch tables, data or schedule), the one with the smallest
backbone; the table still has a row per recipe, pointing to the recipe exported for it.
"""

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

_ONE = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from mmengine.config import Config
from mmattn.deploy import build_export_model, export_onnx, spread_seg_logits, verify_onnx
from mmattn.deploy.det_end2end import detection_noise_floor, spread_det_scores
from mmattn.deploy.onnx_export import _test_image
cfg, mode, out, h, w, thr = {cfg!r}, {mode!r}, {out!r}, {h}, {w}, {thr}
sizes = [((h, w), 1), ((h + 32, w - 32), 3)]
try:
    torch.manual_seed(0)
    model, task = build_export_model(Config.fromfile(cfg))
    if mode == 'end2end':
        try:
            (spread_seg_logits if task == 'seg' else spread_det_scores)(model)
        except Exception:  # a head end2end refuses (e.g. Cascade): the export says so
            pass
    res = dict()
    if not {noise_only}:
        t = time.time()
        info = export_onnx(model, task, out, mode, (h, w))
        res['export_s'] = time.time() - t
        res['fixed'] = info['fixed'] + info['bounds']
        res['rows'] = [verify_onnx(model, task, out, mode, [s], b, det_score_thr=thr)[0]
                       for s, b in sizes]
    if mode == 'end2end' and task == 'det':  # how far PyTorch moves by itself (the same images)
        res['noise'] = [detection_noise_floor(
            model, _test_image(b, s, torch.Generator().manual_seed(0)), thr) for s, b in sizes]
    print('RESULT ' + json.dumps(res))
except Exception as err:
    line = (str(err).strip().splitlines() or [''])[0][:160]
    print('RESULT ' + json.dumps(dict(error=f'{{type(err).__name__}}: {{line}}')))
"""


def run_one(cfg, mode, shape, timeout, det_score_thr=0.3, raw=None, noise_only=False):
    """One export in a child process; its cell, and its raw result appended to ``raw``
    (``noise_only``: no export, only PyTorch's own movement, the ``noise`` of the result)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = _ONE.format(
            noise_only=bool(noise_only),
            root=ROOT,
            cfg=cfg,
            mode=mode,
            out=osp.join(tmp, 'm.onnx'),
            h=shape[0],
            w=shape[1],
            thr=det_score_thr,
        )
        try:
            proc = subprocess.run(
                [sys.executable, '-c', code], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return f'time-out after {timeout} s'
    lines = [x for x in proc.stdout.splitlines() if x.startswith('RESULT ')]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1][:160]
        return f'crashed: {tail}'
    res = json.loads(lines[-1][len('RESULT ') :])
    if raw is not None:
        raw.append(res)
    return format_cell(res, det_score_thr)


def format_cell(res, det_score_thr):
    """The table's cell for one export's result (``RESULT`` line of the child process)."""
    if 'error' in res:
        return res['error']
    rows = res['rows']
    if 'max_rel_diff' in rows[0]:
        worst = max(r['max_rel_diff'] for r in rows)
        cell = f'{"ok" if worst <= 1e-4 else "DIFFERS"} (max rel diff {worst:.2g})'
    elif 'equal_pixels' in rows[0]:
        worst = min(r['equal_pixels'] for r in rows)
        classes = '/'.join(str(r.get('classes', '?')) for r in rows)
        cell = (
            f'{"ok" if worst >= 0.995 else "DIFFERS"} (equal pixels {worst:.4f}; '
            f'classes in the map {classes})'
        )
    else:
        ok = all(r['matched'] == r['boxes'] and r['extra'] == 0 for r in rows)
        worst = min(r['min_iou'] for r in rows)
        coord = max(r.get('max_coord_diff', 0.0) for r in rows)
        # random weights score boxes clipped to slivers (0.03 px high) where IoU 0.99 is a
        # 3e-4 px rounding difference: such a pair passes on its coordinates (both printed)
        ok = ok and (worst >= 0.99 or coord <= 0.01)
        masks = ''
        if 'min_mask_iou' in rows[0]:
            mask_iou = min(r['min_mask_iou'] for r in rows)
            ok = ok and mask_iou >= 0.95
            masks = f', mask IoU >= {mask_iou:.4f}'
        matched = '+'.join(f'{r["matched"]}/{r["boxes"]}' for r in rows)
        verdict = 'ok' if ok else 'DIFFERS'
        noise = res.get('noise')
        if not ok and noise:
            # PyTorch against itself with 1e-3 grey levels of input noise: if it moves as far,
            # the file's difference is float32 rounding at a near-tie of the model
            tie = all(r['matched'] == r['boxes'] and r['extra'] == 0 for r in rows)
            tie = tie and worst >= min(n['min_iou'] for n in noise) - 1e-4
            if 'min_mask_iou' in rows[0]:
                floor = min(n['min_mask_iou'] for n in noise)
                tie = tie and mask_iou >= floor - 1e-4
            if tie:
                n_iou = min(n['min_iou'] for n in noise)
                n_mask = (
                    f', mask IoU {min(n["min_mask_iou"] for n in noise):.4f}'
                    if 'min_mask_iou' in rows[0]
                    else ''
                )
                verdict = (
                    f'near-tie, PyTorch moves as far by itself (1e-3 grey-level input noise: '
                    f'IoU {n_iou:.4f}{n_mask})'
                )
        cell = (
            f'{verdict} (boxes > {det_score_thr:g} matched {matched}, '
            f'IoU >= {worst:.4f}, coordinates within {coord:.1g} px{masks})'
        )
        if sum(r['boxes'] for r in rows) == 0:
            cell = f'runs; no box above {det_score_thr:g} (nothing compared)'
    if res['fixed']:
        cell += '; ' + ', '.join(res['fixed'])
    return cell + f'; export {res["export_s"]:.0f} s'


def code_path(cfg):
    """What decides the exported graph's operators, not its sizes: the model, backbone, neck
    and head types and the registered types configured inside the backbone (its ops)."""
    model = cfg['model']
    backbone = dict(model.get('backbone') or {})
    backbone.pop('init_cfg', None)
    inner = set()

    def walk(obj):
        if isinstance(obj, dict):
            if 'type' in obj:
                inner.add(str(obj['type']))
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    for value in backbone.values():
        walk(value)
    necks = model.get('neck') or []
    necks = [necks] if isinstance(necks, dict) else list(necks)

    def head(name):
        return (model.get(name) or {}).get('type')

    return (
        model['type'],
        backbone.get('type'),
        tuple(sorted(inner)),
        tuple(n['type'] for n in necks),
        head('decode_head'),
        head('roi_head'),
        head('bbox_head'),
    )


def backbone_size(cfg):
    """Parameters of the config's backbone (built on the meta device where it can be)."""
    import torch

    sys.path.insert(0, ROOT)
    from mmattn.analysis.flops import build_model_from_cfg

    try:
        with torch.device('meta'):
            module = build_model_from_cfg(cfg, backbone_only=True)
    except NotImplementedError:  # a constructor that reads a tensor's values: build on CPU
        module = build_model_from_cfg(cfg, backbone_only=True)
    return sum(p.numel() for p in module.parameters())


def pick_representatives(paths):
    """{recipe: the recipe exported for it}: per code path, the smallest backbone (then the
    first name)."""
    from mmengine.config import Config

    groups = {}
    for path in paths:
        cfg = Config.fromfile(path)
        groups.setdefault(code_path(cfg), []).append((backbone_size(cfg), path))
    rep = {}
    for members in groups.values():
        best = min(members)[1]
        rep.update({path: best for _, path in members})
    return rep


def load_results(path):
    """{(recipe, mode): cell} of the results file; a later line wins, and a line cut short
    by a crash is skipped (that cell runs again)."""
    done = {}
    if path and osp.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                done[(r['recipe'], r['mode'])] = r['cell']
    return done


def append_result(path, row):
    """One JSON line, on a line of its own even after a line a crash left unterminated."""
    with open(path, 'a+') as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != '\n':
                f.write('\n')
        f.write(json.dumps(row) + '\n')


def write_table(out, recipes, modes, rep, done):
    rows = []
    for cfg in recipes:
        name = osp.relpath(cfg, ROOT)
        source = osp.relpath(rep[cfg], ROOT)
        cells = []
        for mode in modes:
            if source != name:
                cells.append(f'as `{source}` (same code path, other sizes; not exported)')
            else:
                cells.append(done.get((name, mode), 'not run'))
        rows.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    head = '| recipe | ' + ' | '.join(modes) + ' |\n|' + ' --- |' * (len(modes) + 1)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    with open(tmp, 'w') as f:
        f.write(head + '\n' + '\n'.join(rows) + '\n')
    os.replace(tmp, out)  # never a half-written table


def recheck(results, recipes, args, rep, done):
    with open(results) as f:
        stored = [json.loads(line) for line in f if line.strip()]
    latest = {(r['recipe'], r['mode']): r for r in stored}
    for (name, mode), row in latest.items():
        res = row.get('result') or {}
        if not row['cell'].startswith('DIFFERS') or 'noise' in res or 'rows' not in res:
            continue
        extra = []
        run_one(
            osp.join(ROOT, name), mode, args.shape, args.timeout, args.det_score_thr, extra, True
        )
        if not extra or 'noise' not in extra[0]:
            continue
        res = dict(res, noise=extra[0]['noise'])
        cell = format_cell(res, args.det_score_thr)
        print(f'{name} {mode}: {cell}', flush=True)
        append_result(results, dict(recipe=name, mode=mode, cell=cell, result=res))
        done[(name, mode)] = cell
    write_table(args.out, recipes, args.modes, rep, done)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files or folders')
    parser.add_argument('--out', required=True, help='the markdown table')
    parser.add_argument('--results', help='JSON lines of finished cells (default: OUT.jsonl)')
    parser.add_argument('--modes', nargs='+', default=['tensor', 'end2end'])
    parser.add_argument('--shape', type=int, nargs=2, default=[160, 160])
    parser.add_argument('--timeout', type=int, default=1200)
    parser.add_argument('--jobs', type=int, default=1, help='recipes exported at once')
    parser.add_argument('--det-score-thr', type=float, default=0.3)
    parser.add_argument('--one-per-code-path', action='store_true')
    parser.add_argument('--list', action='store_true', help='print what would be exported')
    parser.add_argument(
        '--recheck-differs',
        action='store_true',
        help="add PyTorch's own movement under input noise to the detector cells that differ "
        '(results from before it was measured) and rewrite the table, exporting nothing',
    )
    args = parser.parse_args(argv)
    results = args.results or osp.splitext(args.out)[0] + '.jsonl'
    recipes = []
    for c in args.configs:
        found = sorted(glob.glob(osp.join(c, '*.py'))) if osp.isdir(c) else [c]
        recipes += [osp.abspath(p) for p in found]
    if args.one_per_code_path:
        rep = pick_representatives(recipes)
    else:
        rep = {c: c for c in recipes}
    done = load_results(results)
    jobs = [
        (c, m)
        for c in recipes
        for m in args.modes
        if rep[c] == c and (osp.relpath(c, ROOT), m) not in done
    ]
    if args.recheck_differs:
        recheck(results, recipes, args, rep, done)
        return
    if args.list:
        for cfg, mode in jobs:
            print(osp.relpath(cfg, ROOT), mode)
        print(f'{len(jobs)} exports for {len(recipes)} recipes ({len(done)} cells done before)')
        return
    lock = threading.Lock()
    start = time.time()

    def one(job):
        cfg, mode = job
        t = time.time()
        raw = []
        cell = run_one(cfg, mode, args.shape, args.timeout, args.det_score_thr, raw)
        name = osp.relpath(cfg, ROOT)
        print(f'{name} {mode}: {cell} ({time.time() - t:.0f} s)', flush=True)
        with lock:
            row = dict(recipe=name, mode=mode, cell=cell, result=raw[0] if raw else None)
            append_result(results, row)
            done[(name, mode)] = cell
            write_table(args.out, recipes, args.modes, rep, done)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, jobs))
    write_table(args.out, recipes, args.modes, rep, done)
    print(f'wrote {args.out} ({len(jobs)} exports, {time.time() - start:.0f} s)')


if __name__ == '__main__':
    main()
