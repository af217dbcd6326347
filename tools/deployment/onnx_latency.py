"""onnxruntime CPU latency of a backbone against PyTorch eager, at one size and thread count.

    python tools/deployment/onnx_latency.py CONFIG [CONFIG ...] --shape 512 512 --threads 1

Random weights; the backbone of each config is exported with dynamic sizes, checked against
PyTorch, and both are timed in turn, run after run (median of ``--runs`` each, after
``--warmup``).
"""

import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def _alternating_medians(fns, warmup, runs):
    """Median ms of each of ``fns``, timed in turn (a, b, a, b, ...) so that a change in the
    machine's load between runs touches both alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, times):
            t = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - t) * 1e3)
    return [statistics.median(bucket) for bucket in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch
    from mmengine.config import Config

    from mmattn.analysis.flops import build_model_from_cfg
    from mmattn.deploy.onnx_export import _Flat, export_onnx

    torch.set_num_threads(args.threads)
    print(
        f'| backbone | onnxruntime ms | PyTorch eager ms | max rel. diff |  '
        f'({args.shape[0]}x{args.shape[1]}, {args.threads} thread(s))'
    )
    for path in args.configs:
        torch.manual_seed(0)
        backbone = build_model_from_cfg(Config.fromfile(path), backbone_only=True)
        flat = _Flat(backbone).eval()
        img = torch.randn(1, 3, *args.shape)
        with tempfile.TemporaryDirectory() as tmp:
            out = osp.join(tmp, 'b.onnx')
            export_onnx(backbone, 'backbone', out, 'tensor', args.shape)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(out, opts, providers=['CPUExecutionProvider'])
            feed = {sess.get_inputs()[0].name: img.numpy()}
            got = sess.run(None, feed)
            with torch.no_grad():
                ref = [t.numpy() for t in flat(img)]
            diff = max(float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(got, ref))
            with torch.no_grad():
                ort_ms, pt_ms = _alternating_medians(
                    [lambda: sess.run(None, feed), lambda: flat(img)], args.warmup, args.runs
                )
        name = type(backbone).__name__
        print(
            f'| {osp.basename(path)} ({name}) | {ort_ms:.0f} | {pt_ms:.0f} | {diff:.1e} |',
            flush=True,
        )


if __name__ == '__main__':
    main()
