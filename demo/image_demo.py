"""Draw a trained detector's or segmenter's predictions on an image.

    python demo/image_demo.py IMAGE CONFIG --weights CKPT [--out-dir DIR] [--score-thr 0.3]
                              [--device cpu]

The config's ``default_scope`` picks MMDetection's ``DetInferencer`` (boxes, masks, class and
score at each box) or MMSegmentation's ``MMSegInferencer`` (class colours over the image, class
names on the regions). Both pictures get a legend strip of the classes with their colours. The
picture is written to ``DIR/<image>_<config>.png`` (default DIR: ``outputs/``) and its path
printed. Checkpoints go through mmattn's safe loader (weights_only + allow-list).
"""

import argparse
import os
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattn.utils.cli import UserInputError, load_config, user_errors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw predictions on an image')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('--weights', required=True, help='checkpoint written by tools/train.py')
    parser.add_argument('--out-dir', default='outputs', help='folder for the picture')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: draw boxes scoring at least this. Defaults to 0.3',
    )
    parser.add_argument('--device', default='cpu', help='cpu or cuda:N. Defaults to cpu')
    return parser.parse_args(argv)


def legend(classes, palette, width: int):
    """A white strip with one colour swatch and class name per class (RGB array)."""
    import cv2
    import numpy as np

    scale = max(0.5, width / 900)
    thick = max(1, round(scale * 2))
    row_h = int(34 * scale)
    font = cv2.FONT_HERSHEY_SIMPLEX
    items, x, y, rows = [], int(10 * scale), 0, 1
    for name, colour in zip(classes, palette):
        (tw, _), _ = cv2.getTextSize(str(name), font, scale, thick)
        w = int(30 * scale) + tw + int(24 * scale)
        if x + w > width and x > int(10 * scale):
            x, y, rows = int(10 * scale), y + row_h, rows + 1
        items.append((x, y, name, colour))
        x += w
    strip = np.full((rows * row_h + int(8 * scale), width, 3), 255, np.uint8)
    for x, y, name, colour in items:
        top = y + int(6 * scale)
        cv2.rectangle(
            strip,
            (x, top),
            (x + int(22 * scale), top + int(22 * scale)),
            tuple(int(c) for c in colour),
            -1,
        )
        cv2.putText(
            strip,
            str(name),
            (x + int(30 * scale), top + int(19 * scale)),
            font,
            scale,
            (0, 0, 0),
            thick,
            cv2.LINE_AA,
        )
    return strip


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.image):
        raise UserInputError(f'image {args.image} does not exist')
    if not osp.isfile(args.weights):
        raise UserInputError(
            f'checkpoint {args.weights} does not exist; pass the .pth written by tools/train.py'
        )
    cfg = load_config(args.config)
    scope = cfg.get('default_scope', 'mmdet')
    import mmcv
    import numpy as np

    from mmattn.utils.checkpoint import install_safe_checkpoint_loader

    install_safe_checkpoint_loader()
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer

        inferencer = DetInferencer(model=cfg, weights=args.weights, device=args.device)
        out = inferencer(
            args.image,
            return_vis=True,
            no_save_vis=True,
            no_save_pred=True,
            pred_score_thr=args.score_thr,
        )
        n = (
            int((out['predictions'][0]['scores'] >= np.float32(args.score_thr)).sum())
            if len(out['predictions'][0]['scores'])
            else 0
        )
        what = f'{n} detections with score >= {args.score_thr}'
    elif scope == 'mmseg':
        from mmseg.apis import MMSegInferencer

        inferencer = MMSegInferencer(model=cfg, weights=args.weights, device=args.device)
        out = inferencer(args.image, return_vis=True, with_labels=True, opacity=0.6)
        what = 'per-pixel classes'
    else:
        raise UserInputError(f'{args.config}: default_scope {scope!r} is neither mmdet nor mmseg')
    meta = inferencer.model.dataset_meta or {}
    vis = out['visualization']  # RGB; MMSegInferencer returns a single image unlisted
    vis = vis[0] if isinstance(vis, (list, tuple)) else vis
    classes, palette = meta.get('classes', ()), meta.get('palette', ())
    if classes and palette:
        vis = np.concatenate([vis, legend(classes, palette, vis.shape[1])], axis=0)
    os.makedirs(args.out_dir, exist_ok=True)
    name = (
        f'{osp.splitext(osp.basename(args.image))[0]}_'
        f'{osp.splitext(osp.basename(args.config))[0]}.png'
    )
    path = osp.join(args.out_dir, name)
    mmcv.imwrite(mmcv.rgb2bgr(vis), path)
    print(f'{path}: {what}')
    return path


if __name__ == '__main__':
    with user_errors():
        main()
