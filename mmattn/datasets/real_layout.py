"""Tiny datasets in the *real* COCO, ADE20K and PASCAL VOC layouts, for smoke-testing recipes.

The bundled shapes data (``shapes.py``) has 3 classes with contiguous ids; the recipes under
``configs/<family>/`` read ``data/coco`` and ``data/ade/ADEChallengeData2016`` with the real
class lists. These writers produce a few images in exactly those layouts, with the features of
the real data that the shapes data never exercises:

* COCO (``data/coco``): ``train2017/``, ``val2017/``, ``annotations/instances_{train,val}2017
  .json`` with the 80 real categories and their real, gapped ids (1-90 without 12, 26, 29, 30,
  45, 66, 68, 69, 71, 83); images of several sizes and aspect ratios, a grayscale JPEG, an image
  without annotations, and an ``iscrowd`` region stored as uncompressed RLE (as COCO stores
  crowds).
* ADE20K (``data/ade/ADEChallengeData2016``): ``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png`` whose values span 0-150: 0 is "other" (ignored
  under ``reduce_zero_label``) and 1-150 are the 150 classes, 150 ("flag") included.
* PASCAL VOC 2012 + SBD aug (``data/VOCdevkit/VOC2012``): ``JPEGImages/``, palette PNGs in
  ``SegmentationClass/`` (as VOC ships them: 0 background, 1-20 the classes, 255 the object
  borders), grayscale PNGs in ``SegmentationClassAug/`` (as mmseg's ``voc_aug.py`` converts the
  SBD set), and ``ImageSets/Segmentation/{train,val,aug}.txt``.

Objects are drawn into the images with their masks, so boxes, polygons and label maps agree.
Everything is deterministic. Files are written into a temporary folder and moved into place
last, so an interrupted run leaves no half-written dataset.
"""

import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Tuple

import cv2
import numpy as np

#: The real COCO 2017 category ids (80 of 1-90; the gaps are ids the 2014 paper dropped).
COCO_CATEGORY_IDS = tuple(
    i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
)
#: Bump when the writers change: an existing fixture with another version is rewritten.
FIXTURE_VERSION = 3


def coco_categories() -> List[dict]:
    """The 80 COCO categories (``id``, ``name``, ``supercategory``) in id order."""
    from mmdet.datasets import CocoDataset

    names = CocoDataset.METAINFO['classes']
    assert len(names) == len(COCO_CATEGORY_IDS) == 80
    return [dict(id=i, name=n, supercategory='thing') for i, n in zip(COCO_CATEGORY_IDS, names)]


def _canvas(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(40, 200, 3)
    img = base[None, None] + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random convex quadrilateral or triangle well inside an ``h x w`` image."""
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    r = rng.uniform(0.12, 0.25) * min(h, w)
    n = int(rng.integers(3, 5))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).astype(np.float32)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a binary mask: run lengths in column-major order, 0s first."""
    flat = mask.astype(np.uint8).flatten(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return dict(counts=[int(c) for c in counts], size=[int(mask.shape[0]), int(mask.shape[1])])


def _write_atomically(dst: str, build) -> None:
    """Run ``build(tmp_dir)`` and move the result to ``dst`` (complete or absent)."""
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.fixture-', dir=parent)
    try:
        build(tmp)
        with open(osp.join(tmp, '.fixture_version'), 'w') as f:
            f.write(str(FIXTURE_VERSION))
        if osp.isdir(dst):
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp)


def _is_current(dst: str) -> bool:
    try:
        with open(osp.join(dst, '.fixture_version')) as f:
            return f.read().strip() == str(FIXTURE_VERSION)
    except OSError:
        return False


# (height, width, grayscale, objects, crowd) of each image; sizes differ in aspect ratio.
_COCO_SPLITS: Dict[str, List[Tuple[int, int, bool, int, bool]]] = {
    # two annotated training images: one iteration of the recipes' 2-image batches
    'train2017': [
        (480, 640, False, 3, True),
        (375, 500, True, 2, False),
        (320, 320, False, 0, False),
    ],
    'val2017': [
        (427, 640, False, 2, True),
        (500, 375, True, 1, False),
        (360, 480, False, 0, False),
        (640, 427, False, 1, False),
    ],
}


def make_coco(root: str, seed: int = 0) -> bool:
    """Write a COCO-2017-layout instance dataset to ``root`` (e.g. ``data/coco``).

    Returns:
        bool: False when a current fixture already exists (nothing written).
    """
    if _is_current(root):
        return False
    categories = coco_categories()
    # Spread objects over the id range, gaps' neighbours included (11/13, 25/27, 82/84, 90).
    used_ids = [90, 1, 11, 13, 25, 27, 44, 46, 65, 67, 70, 82, 84]

    def build(tmp: str) -> None:
        rng = np.random.default_rng(seed)
        os.makedirs(osp.join(tmp, 'annotations'))
        ann_id = 1
        for split, specs in _COCO_SPLITS.items():
            os.makedirs(osp.join(tmp, split))
            images, anns = [], []
            for k, (h, w, gray, n_obj, crowd) in enumerate(specs):
                img_id = (1 if split == 'train2017' else 1001) + k
                name = f'{img_id:012d}.jpg'
                img = _canvas(rng, h, w)
                for j in range(n_obj + int(crowd)):
                    poly = _polygon(rng, h, w)
                    mask = np.zeros((h, w), np.uint8)
                    cv2.fillPoly(mask, [poly.round().astype(np.int32)], 1)
                    img[mask > 0] = rng.integers(0, 256, 3)
                    ys, xs = np.nonzero(mask)
                    box = [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1),
                    ]
                    is_crowd = crowd and j == n_obj
                    seg = (
                        _uncompressed_rle(mask)
                        if is_crowd
                        else [[round(float(v), 2) for v in poly.flatten()]]
                    )
                    anns.append(
                        dict(
                            id=ann_id,
                            image_id=img_id,
                            category_id=int(used_ids[(ann_id - 1) % len(used_ids)]),
                            bbox=box,
                            area=float(mask.sum()),
                            iscrowd=int(is_crowd),
                            segmentation=seg,
                        )
                    )
                    ann_id += 1
                if gray:
                    cv2.imwrite(osp.join(tmp, split, name), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
                else:
                    cv2.imwrite(osp.join(tmp, split, name), img)
                images.append(dict(id=img_id, file_name=name, height=h, width=w))
            data = dict(
                info=dict(description='mmattn COCO-layout fixture'),
                licenses=[],
                images=images,
                annotations=anns,
                categories=categories,
            )
            with open(osp.join(tmp, 'annotations', f'instances_{split}.json'), 'w') as f:
                json.dump(data, f)

    _write_atomically(root, build)
    return True


# (height, width) of each ADE20K-layout image per split.
_ADE_SPLITS = {
    'training': [(512, 683), (384, 512), (600, 450)],
    'validation': [(512, 640), (427, 512)],
}


def make_ade20k(root: str, seed: int = 0) -> bool:
    """Write an ADE20K-layout semantic dataset to ``root`` (``.../ADEChallengeData2016``).

    Every label map holds 0 ("other") and 150 (the last class, "flag") besides other values
    in 1-149, as the real ADE20K annotations do.

    Returns:
        bool: False when a current fixture already exists (nothing written).
    """
    if _is_current(root):
        return False

    def build(tmp: str) -> None:
        rng = np.random.default_rng(seed)
        for split, sizes in _ADE_SPLITS.items():
            img_dir = osp.join(tmp, 'images', split)
            ann_dir = osp.join(tmp, 'annotations', split)
            os.makedirs(img_dir)
            os.makedirs(ann_dir)
            for k, (h, w) in enumerate(sizes):
                name = f'ADE_{"train" if split == "training" else "val"}_{k + 1:08d}'
                img = _canvas(rng, h, w)
                label = np.zeros((h, w), np.uint8)  # 0 = other
                values = [150] + [int(v) for v in rng.integers(1, 150, 4)]
                for v in values:
                    poly = _polygon(rng, h, w)
                    cv2.fillPoly(label, [poly.round().astype(np.int32)], v)
                    img[label == v] = rng.integers(0, 256, 3)
                label[: h // 8, : w // 8] = 150  # 150 present even if a polygon covers it
                cv2.imwrite(osp.join(img_dir, name + '.jpg'), img)
                cv2.imwrite(osp.join(ann_dir, name + '.png'), label)

    _write_atomically(root, build)
    return True


def voc_palette() -> List[int]:
    """The palette of the VOC PNGs: mmseg's 21 class colours, and VOC's (224, 224, 192) at 255."""
    from mmseg.datasets import PascalVOCDataset

    colours = list(PascalVOCDataset.METAINFO['palette'])
    colours += [(0, 0, 0)] * (255 - len(colours)) + [(224, 224, 192)]
    return [v for rgb in colours for v in rgb]


def make_voc_aug(root: str, seed: int = 0) -> bool:
    """Write a PASCAL VOC 2012 + aug layout to ``root`` (``.../VOCdevkit/VOC2012``).

    Train and val images have palette PNGs in ``SegmentationClass``; the aug images have
    grayscale PNGs in ``SegmentationClassAug``. Labels are 0-20 with 255 on object borders.

    Returns:
        bool: False when a current fixture already exists (nothing written).
    """
    if _is_current(root):
        return False
    from PIL import Image

    splits = {
        'train': [(375, 500), (500, 333)],
        'val': [(366, 500), (281, 500)],
        'aug': [(333, 500), (500, 375)],
    }

    def build(tmp: str) -> None:
        rng = np.random.default_rng(seed)
        for sub in (
            'JPEGImages',
            'SegmentationClass',
            'SegmentationClassAug',
            'ImageSets/Segmentation',
        ):
            os.makedirs(osp.join(tmp, sub))
        for split, sizes in splits.items():
            names = []
            for k, (h, w) in enumerate(sizes):
                name = f'2007_{split}_{k:04d}'
                img = _canvas(rng, h, w)
                label = np.zeros((h, w), np.uint8)
                for v in [int(v) for v in rng.integers(1, 21, 3)] + [20]:
                    poly = _polygon(rng, h, w).round().astype(np.int32)
                    cv2.fillPoly(label, [poly], v)
                    cv2.polylines(label, [poly], True, 255, 2)  # VOC's 'void' border
                    img[label == v] = rng.integers(0, 256, 3)
                cv2.imwrite(osp.join(tmp, 'JPEGImages', name + '.jpg'), img)
                if split == 'aug':
                    cv2.imwrite(osp.join(tmp, 'SegmentationClassAug', name + '.png'), label)
                else:
                    png = Image.fromarray(label, mode='P')
                    png.putpalette(voc_palette())
                    png.save(osp.join(tmp, 'SegmentationClass', name + '.png'))
                names.append(name)
            with open(osp.join(tmp, 'ImageSets', 'Segmentation', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(names) + '\n')

    _write_atomically(root, build)
    return True


def make_real_layout(data_root: str, seed: int = 0) -> Dict[str, str]:
    """Write the fixtures under ``data_root`` in the OpenMMLab layout; return their roots."""
    coco = osp.join(data_root, 'coco')
    ade = osp.join(data_root, 'ade', 'ADEChallengeData2016')
    voc = osp.join(data_root, 'VOCdevkit', 'VOC2012')
    make_coco(coco, seed)
    make_ade20k(ade, seed)
    make_voc_aug(voc, seed)
    return dict(coco=coco, ade20k=ade, voc=voc)
