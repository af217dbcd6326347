"""Export recipes to ONNX and write a table of the outcome.

    python tools/deployment/onnx_sweep.py configs/biformer configs/comparison/fpn_x.py \
        --out work_dirs/onnx_sweep.md [--modes tensor end2end] [--shape 160 160] [--jobs 2]

Arguments are config files or folders (every ``*.py`` in them). Random weights (the outputs
are compared, not the accuracy); each exported file is run in onnxruntime at the export size
(batch 1) and at (H + 32, W - 32) (batch 3). A cell is ``ok (difference)`` or the reason it
failed: tensor mode, the largest relative difference; a segmentor end to end, the share of
equal pixels; a detector end to end, the ``test_step`` boxes above 0.05 matched one to one
(random weights rarely score 0.3), with the worst IoU. One recipe and mode per process, so that
a crash or a time-out is one cell.
"""

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

_ONE = r"""
import json, sys, time, traceback
sys.path.insert(0, {root!r})
import torch
from mmengine.config import Config
from mmattn.deploy import build_export_model, export_onnx, verify_onnx
cfg, mode, out, h, w = {cfg!r}, {mode!r}, {out!r}, {h}, {w}
try:
    torch.manual_seed(0)
    model, task = build_export_model(Config.fromfile(cfg))
    t = time.time()
    info = export_onnx(model, task, out, mode, (h, w))
    took = time.time() - t
    rows = verify_onnx(model, task, out, mode, [(h, w)], 1, det_score_thr=0.05)
    rows += verify_onnx(model, task, out, mode, [(h + 32, w - 32)], 3, det_score_thr=0.05)
    res = dict(fixed=info['fixed'] + info['bounds'], rows=rows, export_s=took)
    print('RESULT ' + json.dumps(res))
except Exception as err:
    line = (str(err).strip().splitlines() or [''])[0][:160]
    print('RESULT ' + json.dumps(dict(error=f'{{type(err).__name__}}: {{line}}')))
"""


def run_one(cfg, mode, shape, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        code = _ONE.format(
            root=ROOT, cfg=cfg, mode=mode, out=osp.join(tmp, 'm.onnx'), h=shape[0], w=shape[1]
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
    if 'error' in res:
        return res['error']
    rows = res['rows']
    if 'max_rel_diff' in rows[0]:
        worst = max(r['max_rel_diff'] for r in rows)
        cell = f'{"ok" if worst <= 1e-4 else "DIFFERS"} (max rel diff {worst:.2g})'
    elif 'equal_pixels' in rows[0]:
        worst = min(r['equal_pixels'] for r in rows)
        cell = f'{"ok" if worst >= 0.995 else "DIFFERS"} (equal pixels {worst:.4f})'
    else:
        ok = all(r['matched'] == r['boxes'] and r['extra'] == 0 for r in rows)
        ok = ok and min(r['min_iou'] for r in rows) >= 0.99
        matched = '+'.join(f'{r["matched"]}/{r["boxes"]}' for r in rows)
        worst = min(r['min_iou'] for r in rows)
        cell = f'{"ok" if ok else "DIFFERS"} (boxes > 0.05 matched {matched}, IoU >= {worst:.4f})'
        if sum(r['boxes'] for r in rows) == 0:
            cell = 'runs; no box above 0.05 with random weights (nothing compared)'
    if res['fixed']:
        cell += '; ' + ', '.join(res['fixed'])
    return cell + f'; export {res["export_s"]:.0f} s'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files or folders')
    parser.add_argument('--out', required=True)
    parser.add_argument('--modes', nargs='+', default=['tensor', 'end2end'])
    parser.add_argument('--shape', type=int, nargs=2, default=[160, 160])
    parser.add_argument('--timeout', type=int, default=1200)
    parser.add_argument('--jobs', type=int, default=1, help='recipes exported at once')
    args = parser.parse_args()
    cfgs = []
    for c in args.configs:
        cfgs += sorted(glob.glob(osp.join(c, '*.py'))) if osp.isdir(c) else [c]
    start = time.time()

    def one(job):
        cfg, mode = job
        t = time.time()
        cell = run_one(cfg, mode, args.shape, args.timeout)
        print(f'{cfg} {mode}: {cell} ({time.time() - t:.0f} s)', flush=True)
        return cell

    jobs = [(c, m) for c in cfgs for m in args.modes]
    with ThreadPoolExecutor(args.jobs) as pool:
        cells = list(pool.map(one, jobs))
    rows = []
    for i, cfg in enumerate(cfgs):
        row = cells[i * len(args.modes) : (i + 1) * len(args.modes)]
        rows.append(f'| {osp.relpath(cfg, ROOT)} | ' + ' | '.join(row) + ' |')
    head = '| recipe | ' + ' | '.join(args.modes) + ' |\n|' + ' --- |' * (len(args.modes) + 1)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(head + '\n' + '\n'.join(rows) + '\n')
    print(f'wrote {args.out} ({len(jobs)} exports, {time.time() - start:.0f} s)')


if __name__ == '__main__':
    main()
