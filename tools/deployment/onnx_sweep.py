"""Export every recipe of the given config folders to ONNX and write a table of the outcome.

    python tools/deployment/onnx_sweep.py configs/biformer configs/comparison \
        --out work_dirs/onnx_sweep.md [--modes tensor end2end] [--shape 128 160]

Random weights (the outputs are compared, not the accuracy); each exported file is run in
onnxruntime at the export size and at another size. A recipe's cell is ``ok (difference)``, or
the reason it failed. One recipe per process, so that a crash or a time-out is one cell.
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

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

_ONE = r"""
import json, sys, traceback
sys.path.insert(0, {root!r})
import torch
from mmengine.config import Config
from mmattn.deploy import build_export_model, export_onnx, verify_onnx
cfg, mode, out, h, w = {cfg!r}, {mode!r}, {out!r}, {h}, {w}
try:
    torch.manual_seed(0)
    model, task = build_export_model(Config.fromfile(cfg))
    info = export_onnx(model, task, out, mode, (h, w))
    rows = verify_onnx(model, task, out, mode, [(h, w), (h + 32, w - 32)])
    print('RESULT ' + json.dumps(dict(fixed=info['fixed'] + info['bounds'], rows=rows)))
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
    key = 'max_rel_diff' if mode == 'tensor' else 'equal_pixels'
    worst = (
        max(r[key] for r in res['rows']) if mode == 'tensor' else min(r[key] for r in res['rows'])
    )
    ok = worst <= 1e-4 if mode == 'tensor' else worst >= 0.995
    cell = f'{"ok" if ok else "DIFFERS"} ({key} {worst:.2g})'
    if res['fixed']:
        cell += '; ' + ', '.join(res['fixed'])
    return cell


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folders', nargs='+')
    parser.add_argument('--out', required=True)
    parser.add_argument('--modes', nargs='+', default=['tensor', 'end2end'])
    parser.add_argument('--shape', type=int, nargs=2, default=[128, 160])
    parser.add_argument('--timeout', type=int, default=1200)
    args = parser.parse_args()
    cfgs = sorted(c for f in args.folders for c in glob.glob(osp.join(f, '*.py')))
    rows = []
    for cfg in cfgs:
        cells = []
        for mode in args.modes:
            is_seg = osp.basename(cfg).startswith(('fpn_', 'upernet_', 'eanet_'))
            if mode == 'end2end' and not is_seg:
                cells.append('not implemented (detector end2end)')
                continue
            t = time.time()
            cells.append(run_one(cfg, mode, args.shape, args.timeout))
            print(f'{cfg} {mode}: {cells[-1]} ({time.time() - t:.0f} s)', flush=True)
        rows.append(f'| {osp.relpath(cfg, ROOT)} | ' + ' | '.join(cells) + ' |')
    head = '| recipe | ' + ' | '.join(args.modes) + ' |\n|' + ' --- |' * (len(args.modes) + 1)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(head + '\n' + '\n'.join(rows) + '\n')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
