"""Export a config's model to ONNX and check it in onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx \
        [--mode tensor|end2end] [--shape H W] [--opset N] [--verify]

``--mode tensor``: preprocessed ``(N, 3, H, W)`` float32 -> what ``model(img, mode='tensor')``
returns, flattened in order. ``--mode end2end``: raw 0-255 image in the config's channel order
-> ``seg_pred`` ``(N, H, W)`` int64 (segmentors), or ``dets`` ``(N, K, 5)``, ``labels``
``(N, K)`` and for Mask R-CNN ``masks`` ``(N, K, H, W)`` (RetinaNet-style detectors, Faster /
Mask R-CNN). Batch, height and width are dynamic; an axis that had to be fixed or was bounded
is printed. See docs/deployment.md.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmattn.utils.cli import UserInputError, load_config, parse_run_args, user_errors  # noqa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="trained checkpoint; 'none' exports random weights")
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--mode', choices=['tensor', 'end2end'], default='tensor')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[128, 160],
        metavar=('H', 'W'),
        help='export size (default 128 160); the file accepts other sizes',
    )
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument(
        '--verify',
        action='store_true',
        help='run the file beside PyTorch at the export size and at another '
        'size and print the differences',
    )
    return parse_run_args(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with user_errors():
        from mmattn.deploy import build_export_model, export_onnx, verify_onnx
        from mmattn.deploy.onnx_export import MIN_SIZE, SUPPORTED_OPSETS

        if args.opset not in SUPPORTED_OPSETS:
            raise UserInputError(
                f'--opset {args.opset} is not supported; use one of '
                f'{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}'
            )
        if min(args.shape) < MIN_SIZE:
            raise UserInputError(
                f'--shape {args.shape[0]} {args.shape[1]} is too small; '
                f'use at least {MIN_SIZE} {MIN_SIZE}'
            )
        cfg = load_config(args.config, args.cfg_options)
        ckpt = None if args.checkpoint.lower() == 'none' else args.checkpoint
        model, task = build_export_model(cfg, ckpt)
        info = export_onnx(model, task, args.out, args.mode, args.shape, args.opset)
    print(f'wrote {args.out}: outputs {", ".join(info["outputs"])}')
    for note in info['fixed']:
        print(f'note: {note} (an op is not size-generic there); the file runs at that size only')
    for note in info['bounds']:
        print(
            f'note: {note} (a size rule was evaluated at the export size); other sizes are '
            'not valid for this file'
        )
    if args.verify:
        h, w = args.shape
        other = (h + 32, w - 32) if w >= 96 else (h + 32, w + 32)
        for row in verify_onnx(model, task, args.out, args.mode, [(h, w), other]):
            diffs = ', '.join(f'{k}={v:.3g}' for k, v in row.items() if k != 'shape')
            print(f'verify {row["shape"][0]}x{row["shape"][1]}: {diffs}')


if __name__ == '__main__':
    main()
