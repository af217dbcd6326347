"""The bundled "shapes" datasets: small, deterministic, and in the real formats.

COCO and ADE20K can't be downloaded here, so mmattn ships a generator of synthetic scenes that
the stock mmdet / mmseg pipelines read unchanged:

* ``shapes_coco``: instance segmentation in COCO format: ``{train,val}/*.jpg`` and
  ``annotations/instances_{train,val}.json`` with polygon masks of the *visible* part of each
  object (objects overlap; later ones occlude earlier ones).
* ``shapes_ade``: semantic segmentation in ADE20K's layout: ``images/{training,validation}``
  (``.jpg``) and ``annotations/{training,validation}`` (``.png``) whose value 0 means "other"
  (ignored under ``reduce_zero_label=True``, as in ADE20K) and 1.. are the classes.

Scenes: a smooth random background with noise and clutter (lines and blobs of random colour
that belong to no class), and 1-5 objects of random class, size, colour and rotation. The class
is decided by shape alone, never by colour, so a model must learn geometry.
"""

import json
import math
import os
import os.path as osp
import shutil
import tempfile

import cv2
import numpy as np

#: Bump when the generator changes: an existing dataset with another version is rebuilt.
GENERATOR_VERSION = 2
SHAPE_CLASSES = ('circle', 'rectangle', 'triangle')
SHAPES_COCO_METAINFO = dict(
    classes=SHAPE_CLASSES, palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)]
)
# Semantic classes after reduce_zero_label: value 1 -> 'background', 2.. -> the shapes.
SHAPES_ADE_METAINFO = dict(
    classes=('background',) + SHAPE_CLASSES,
    palette=[(120, 120, 120), (220, 20, 60), (0, 128, 255), (60, 180, 75)],
)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    lo, hi = rng.uniform(20, 120, 3), rng.uniform(120, 235, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = np.cos(angle) * xx + np.sin(angle) * yy
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = lo[None, None] + (hi - lo)[None, None] * t[..., None]
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(rng: np.random.Generator, img: np.ndarray, other: np.ndarray) -> None:
    """Draw distractors; ``other`` marks their pixels (ADE's 'other', label 0)."""
    size = img.shape[0]
    for _ in range(rng.integers(2, 6)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        thickness = int(rng.integers(1, 3))
        cv2.line(img, p1, p2, color, thickness)
        cv2.line(other, p1, p2, 1, thickness)
    for _ in range(rng.integers(0, 3)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = (int(rng.integers(2, 6)), int(rng.integers(2, 6)))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
        cv2.ellipse(other, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)


def _shape_mask(rng: np.random.Generator, cls: int, size: int, min_side: int, max_side: int):
    mask = np.zeros((size, size), np.uint8)
    side = int(rng.integers(min_side, max_side + 1))
    cx, cy = (int(v) for v in rng.integers(side // 2, size - side // 2, 2))
    name = SHAPE_CLASSES[cls]
    if name == 'circle':
        cv2.circle(mask, (cx, cy), side // 2, 1, -1)
    else:
        if name == 'rectangle':
            w, h = side, int(side * rng.uniform(0.55, 1.0))
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], np.float64) / 2
        else:  # triangle
            r = side / 2
            pts = np.array(
                [
                    [r * math.cos(a), r * math.sin(a)]
                    for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
                ]
            )
        theta = rng.uniform(0, 2 * math.pi)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        pts = pts @ rot.T + [cx, cy]
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _scene(rng: np.random.Generator, size: int):
    img = _background(rng, size)
    other = np.zeros((size, size), np.uint8)
    _clutter(rng, img, other)
    owner = np.full((size, size), -1, np.int32)  # which object a pixel shows, -1 none
    classes = []
    for idx in range(int(rng.integers(1, 6))):
        cls = int(rng.integers(len(SHAPE_CLASSES)))
        mask = _shape_mask(rng, cls, size, size // 8, size // 2 - 4).astype(bool)
        color = rng.integers(0, 256, 3)
        shade = np.clip(color[None] + rng.normal(0, 6, (mask.sum(), 3)), 0, 255)
        img[mask] = shade.astype(np.uint8)
        owner[mask] = idx
        classes.append(cls)
    return img, owner, classes, other


def _polygons(mask: np.ndarray):
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    polys = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    return [p for p in polys if len(p) >= 6]


def _write_coco(out: str, split: str, num: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out, split))
    images, annotations = [], []
    for i in range(num):
        img, owner, classes, _ = _scene(rng, size)
        name = f'{i:05d}.jpg'
        cv2.imwrite(osp.join(out, split, name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        for idx, cls in enumerate(classes):
            visible = owner == idx
            polys = _polygons(visible)
            if visible.sum() < 16 or not polys:
                continue  # fully occluded: not annotated, as in COCO
            ys, xs = np.nonzero(visible)
            x0, y0 = float(xs.min()), float(ys.min())
            w, h = float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i + 1,
                    category_id=cls + 1,
                    segmentation=polys,
                    area=float(visible.sum()),
                    bbox=[x0, y0, w, h],
                    iscrowd=0,
                )
            )
    categories = [
        dict(id=k + 1, name=n, supercategory='shape') for k, n in enumerate(SHAPE_CLASSES)
    ]
    with open(osp.join(out, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def _write_ade(out: str, split: str, num: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out, 'images', split))
    os.makedirs(osp.join(out, 'annotations', split))
    for i in range(num):
        img, owner, classes, other = _scene(rng, size)
        label = np.ones((size, size), np.uint8)  # 1 = background
        label[other > 0] = 0  # 0 = "other", ignored after reduce_zero_label
        for idx, cls in enumerate(classes):
            label[owner == idx] = cls + 2
        name = f'ADE_shapes_{i:05d}'
        cv2.imwrite(
            osp.join(out, 'images', split, name + '.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        cv2.imwrite(osp.join(out, 'annotations', split, name + '.png'), label)


def _build_atomically(dst: str, fill) -> bool:
    """Run ``fill(tmpdir)`` and move the result to ``dst``; never leaves a partial ``dst``."""
    stamp = osp.join(dst, f'.complete-v{GENERATOR_VERSION}')
    if osp.exists(stamp):
        return False
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(dst)}.', dir=parent)
    try:
        fill(tmp)
        open(osp.join(tmp, f'.complete-v{GENERATOR_VERSION}'), 'w').close()
        if osp.exists(dst):
            shutil.rmtree(dst)
        os.rename(tmp, dst)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
    return True


def make_shapes_coco(
    dst: str, num_train: int = 300, num_val: int = 60, size: int = 128, seed: int = 0
) -> bool:
    """Write the COCO-format instance dataset to ``dst``; returns False if already there."""

    def fill(tmp):
        os.makedirs(osp.join(tmp, 'annotations'))
        _write_coco(tmp, 'train', num_train, size, seed)
        _write_coco(tmp, 'val', num_val, size, seed + 1)

    return _build_atomically(dst, fill)


def make_shapes_ade(
    dst: str, num_train: int = 300, num_val: int = 60, size: int = 128, seed: int = 100
) -> bool:
    """Write the ADE20K-format semantic dataset to ``dst``; returns False if already there."""

    def fill(tmp):
        _write_ade(tmp, 'training', num_train, size, seed)
        _write_ade(tmp, 'validation', num_val, size, seed + 1)

    return _build_atomically(dst, fill)
