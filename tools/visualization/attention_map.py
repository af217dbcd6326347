"""Draw where a query point looks, per attention op of a config's backbone.

    python tools/visualization/attention_map.py IMAGE CONFIG [CHECKPOINT] --point X Y
        [--out attention_map.png] [--size 512] [--every-block]

X Y are pixel coordinates in IMAGE. The image is resized (longer side ``--size``), normalised
with the config's data preprocessor and run through the backbone; for the last block of each
stage (every block with ``--every-block``) the weights each op computed are drawn over the
image (see ``mmattn/analysis/attention_maps.py``): agent attention's composite map and agents,
BRA's routed regions, FLatten's focused-kernel weights, Shunted's per-group maps, EA's
memory-slot responses, the softmax of SRA, windows and global attention; an op that records no
weights gets an input-gradient saliency map. Without CHECKPOINT the
model is randomly initialised (useful to check the tool, not to read the maps).
"""

import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.utils.cli import UserInputError, load_config, user_errors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Attention maps of a query point')
    parser.add_argument('image')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='detector/segmentor or backbone weights')
    parser.add_argument(
        '--point',
        type=float,
        nargs=2,
        required=True,
        metavar=('X', 'Y'),
        help='query pixel (x, y) in the image',
    )
    parser.add_argument('--out', default='attention_map.png')
    parser.add_argument(
        '--size', type=int, default=512, help='resize so the longer side is this (0: keep)'
    )
    parser.add_argument(
        '--every-block', action='store_true', help='one row per block instead of one per stage'
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of a random-init model')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmcv
    import numpy as np
    import torch

    from mmattn.analysis.attention_maps import draw, op_maps, record_attention_calls, select_records
    from mmattn.analysis.flops import build_model_from_cfg

    if not osp.isfile(args.image):
        raise UserInputError(f'image {args.image} does not exist')
    image = mmcv.imread(args.image, channel_order='rgb')
    h0, w0 = image.shape[:2]
    px, py = args.point
    if not (0 <= px < w0 and 0 <= py < h0):
        raise UserInputError(f'--point {px} {py} is outside the {w0}x{h0} image')
    if args.size and max(h0, w0) != args.size:
        ratio = args.size / max(h0, w0)
        image = mmcv.imresize(image, (max(1, round(w0 * ratio)), max(1, round(h0 * ratio))))
    ih, iw = image.shape[:2]
    point_xy = (px * iw / w0, py * ih / h0)

    cfg = load_config(args.config)
    torch.manual_seed(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if args.checkpoint:
            from mmengine.runner import load_checkpoint

            from mmattn.utils.checkpoint import install_safe_checkpoint_loader

            install_safe_checkpoint_loader()  # as tools/train.py: MMEngine's own checkpoints
            model = build_model_from_cfg(cfg)
            load_checkpoint(
                model, args.checkpoint, map_location='cpu', revise_keys=[(r'^module\.', '')]
            )
            backbone = model.backbone
        else:
            backbone = build_model_from_cfg(cfg, backbone_only=True)
        backbone.eval()
    pre = cfg.model.get('data_preprocessor', {}) or {}
    mean = np.array(pre.get('mean', [123.675, 116.28, 103.53]), dtype=np.float32)
    std = np.array(pre.get('std', [58.395, 57.12, 57.375]), dtype=np.float32)
    img = torch.from_numpy((image.astype(np.float32) - mean) / std).permute(2, 0, 1)[None]

    records = record_attention_calls(backbone, lambda: backbone(img))
    if not records:
        raise UserInputError(f'the backbone of {args.config} calls no registered attention op')
    frac = (point_xy[1] / ih, point_xy[0] / iw)
    rows = []
    for rec in select_records(records, args.every_block):
        label = f'{rec.name}\n{type(rec.op).__name__} on {rec.hw[0]}x{rec.hw[1]} tokens'
        rows.append((label, op_maps(rec, frac)))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    draw(image, point_xy, rows, args.out)
    print(f'wrote {args.out}: {len(rows)} op call(s), {sum(len(m) for _, m in rows)} map(s)')


if __name__ == '__main__':
    with user_errors():
        main()
