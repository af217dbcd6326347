"""Pre-flight checks of a user's data and checkpoints, each failing in one line.

:func:`mmattn.engine.preflight.preflight` runs them (and the model checks) before a run
builds its runner, so a mistake surfaces in seconds as ``error: <what> (<where>); <what to
do>`` instead of as a traceback an hour into training, or worse, as silently dropped
annotations. The checks only read files. What is checked:

* COCO JSON: every image exists, decodes as an 8-bit image of the size the JSON states (a
  grayscale image is accepted: ``LoadImageFromFile`` converts it to 3 channels, and COCO has
  such images); every box lies inside its image and has a positive area; image/category ids
  resolve; the config's class names occur in the JSON.
* Semantic segmentation folders: at least one image, each with its label map; label maps
  have the image's size and no value above the class count.
* A checkpoint's tensors fit the model's (:func:`compare_state_dicts`).
* The checkpoint to load or resume from is complete (a truncated file is named as such).

On large datasets image headers and label maps are checked on an evenly spread sample
(``MMATTN_DATA_CHECK_LIMIT``, default 5000 images and 300 label maps); existence is checked
for every file. ``MMATTN_SKIP_DATA_CHECKS=1`` skips the dataset part.
"""

import json
import os
import os.path as osp
import sys
from typing import Dict, Iterable, List, Optional

import numpy as np

from .cli import UserInputError, iter_split_datasets

IMAGE_LIMIT = int(os.environ.get('MMATTN_DATA_CHECK_LIMIT', 5000))
LABEL_LIMIT = max(1, IMAGE_LIMIT // 16)


def _spread(items: List, limit: int) -> List:
    """At most ``limit`` items, evenly spread (deterministic)."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _more(n: int) -> str:
    return f' (and {n} more such problem{"s" if n > 1 else ""})' if n else ''


def file_is_truncated(path: str) -> str:
    """Why a JPEG or PNG file is cut short (no end marker), or ``''``.

    ``PIL.Image.verify`` checks a file's structure up to where it stops, and OpenCV decodes a
    truncated JPEG into an image whose lower part is grey, with only a warning; the end marker
    is the cheap test (one read of the last bytes).
    """
    with open(path, 'rb') as f:
        head = f.read(8)
        f.seek(max(0, osp.getsize(path) - 1024))
        tail = f.read()
    if head[:2] == b'\xff\xd8' and b'\xff\xd9' not in tail:
        return 'its JPEG end-of-image marker is missing'
    if head == b'\x89PNG\r\n\x1a\n' and b'IEND' not in tail[-32:]:
        return 'its PNG IEND chunk is missing'
    return ''


def image_header(path: str, where: str):
    """``(width, height, mode)`` of an image file, or a :class:`UserInputError`."""
    from PIL import Image, UnidentifiedImageError

    if not osp.isfile(path):
        raise UserInputError(
            f'image {path} does not exist ({where}); add the file or remove its entry'
        )
    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
            im.verify()  # checks the container structure (PNG CRCs, JPEG markers)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserInputError(
            f'image {path} is corrupt or not an image ({where}): {err}; re-export or remove it'
        ) from None
    truncated = file_is_truncated(path)
    if truncated:
        raise UserInputError(
            f'image {path} is truncated ({truncated}) ({where}); the decoder '
            f'would fill the missing part with grey: re-export or re-download it'
        )
    if mode not in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        # PIL reports 16-bit RGB(A) PNGs as 8-bit 'RGB'; the IHDR chunk has the bit depth.
        with open(path, 'rb') as f:
            head = f.read(25)
        if head[:8] == b'\x89PNG\r\n\x1a\n' and len(head) == 25 and head[24] == 16:
            mode = 'I;16 (PNG)'
    if mode.startswith('I') or mode == 'F':
        raise UserInputError(
            f'image {path} is {mode} ({"16-bit" if mode.startswith("I;16") else "high bit depth"}'
            f') ({where}); the image pipeline decodes to 8 bits and would crush it to near black; '
            f'convert it to 8-bit RGB (e.g. scale to 0-255 and save as PNG/JPEG)'
        )
    return size[0], size[1], mode


def check_coco_contents(
    ann_path: str,
    img_dir: str,
    classes: Optional[Iterable[str]] = None,
    split: str = 'train',
    with_mask: bool = False,
) -> List[str]:
    """Check a COCO instances JSON against its image folder (see the module docstring).

    Returns the notes of :func:`~mmattn.utils.annotation_checks.check_coco_structure`.
    """
    from .annotation_checks import check_coco_structure
    from .cli import check_coco_json

    check_coco_json(ann_path)  # valid JSON with images/annotations/categories, >= 1 image
    with open(ann_path, encoding='utf-8') as f:
        data = json.load(f)
    where = f'{split} annotations {ann_path}'
    # types, unique ids, finite geometry, well-formed masks
    notes = check_coco_structure(data, ann_path, where, with_mask)
    images: Dict = {}
    for img in data['images']:
        if not isinstance(img, dict) or not {'id', 'file_name', 'width', 'height'} <= set(img):
            raise UserInputError(
                f'an entry of "images" lacks id/file_name/width/height ({where})'
                f': {str(img)[:80]}; every image needs all four'
            )
        images[img['id']] = img
    cats = {c.get('id'): c.get('name') for c in data['categories'] if isinstance(c, dict)}
    if classes is not None:
        classes = list(classes)
        if classes and not set(classes) & set(cats.values()):
            raise UserInputError(
                f'none of the config classes {classes[:5]} occurs among the JSON categories '
                f'{sorted(map(str, cats.values()))[:5]} ({where}); every annotation would be '
                f'dropped: set metainfo.classes to the JSON category names'
            )
    problems = [p for p in (_annotation_problem(a, images, cats) for a in data['annotations']) if p]
    if problems:
        raise UserInputError(f'{problems[0]} ({where}){_more(len(problems) - 1)}')
    _check_coco_images(images, img_dir, ann_path, where)
    return notes


def _annotation_problem(ann: dict, images: Dict, cats: Dict) -> Optional[str]:
    """What is wrong with one COCO annotation (its image, category or box), or None."""
    img = images.get(ann.get('image_id'))
    aid = ann.get('id')
    if img is None:
        return (
            f'annotation {aid} refers to image_id {ann.get("image_id")}, which "images" '
            f'does not list; fix the image_id or add the image'
        )
    if ann.get('category_id') not in cats:
        return (
            f'annotation {aid} has category_id {ann.get("category_id")}, which '
            f'"categories" does not list; fix it or add the category'
        )
    box = ann.get('bbox')
    if not (isinstance(box, (list, tuple)) and len(box) == 4):
        return f'annotation {aid} has no [x, y, w, h] bbox; add one'
    x, y, w, h = (float(v) for v in box)
    name = img['file_name']
    if w <= 0 or h <= 0:
        return (
            f'annotation {aid} on {name} has a zero-area box {box} (w and h must be > 0); '
            f'fix the box or delete the annotation'
        )
    if x < -1 or y < -1 or x + w > img['width'] + 1 or y + h > img['height'] + 1:
        return (
            f'annotation {aid} on {name} has box {box} outside the {img["width"]}x'
            f'{img["height"]} image; clip the box to the image or fix width/height'
        )
    return None


def _check_coco_images(images: Dict, img_dir: str, ann_path: str, where: str) -> None:
    """Every listed image exists; a spread sample decodes at the size the JSON states."""
    entries = sorted(images.values(), key=lambda i: str(i['file_name']))
    missing = [i['file_name'] for i in entries if not osp.isfile(osp.join(img_dir, i['file_name']))]
    if missing:
        raise UserInputError(
            f'image {osp.join(img_dir, missing[0])} listed in {ann_path} does '
            f'not exist{_more(len(missing) - 1)}; check data_root/data_prefix '
            f'or add the files'
        )
    for img in _spread(entries, IMAGE_LIMIT):
        path = osp.join(img_dir, img['file_name'])
        w, h, _ = image_header(path, where)
        if (w, h) != (img['width'], img['height']):
            raise UserInputError(
                f'image {path} is {w}x{h} but {ann_path} says {img["width"]}x{img["height"]}; '
                f'boxes and masks would be misplaced: fix width/height in the JSON'
            )


def _seg_dataset_class(ds: dict):
    """The mmseg dataset class ``ds`` builds, or None (mmseg absent, unknown type)."""
    try:
        from mmseg.registry import DATASETS

        return DATASETS.get(ds.get('type', 'BaseSegDataset'))
    except Exception:  # mmseg absent or unknown type: the checks that need it are skipped
        return None


def _seg_classes(ds: dict) -> Optional[List[str]]:
    meta = ds.get('metainfo') or {}
    if meta.get('classes'):
        return list(meta['classes'])
    cls = _seg_dataset_class(ds)
    return list(getattr(cls, 'METAINFO', {}).get('classes', [])) or None


def effective_reduce_zero_label(ds: dict, split: str = 'train') -> bool:
    """Whether the dataset ``ds`` will map label 0 to ignore and ``v`` to ``v - 1``.

    What mmseg does, in its order: the dataset's ``reduce_zero_label`` argument (the config
    key, else the class default: ``ADE20KDataset`` defaults to True), which every sample
    carries to the pipeline; a ``LoadAnnotations`` step that sets ``reduce_zero_label``
    explicitly must agree with it (mmseg asserts at the first sample otherwise).
    """
    if 'reduce_zero_label' in ds:
        value = bool(ds['reduce_zero_label'])
    else:
        import inspect

        cls = _seg_dataset_class(ds)
        param = None
        if cls is not None:
            param = inspect.signature(cls.__init__).parameters.get('reduce_zero_label')
        value = (
            bool(param.default)
            if param is not None and param.default is not inspect.Parameter.empty
            else False
        )
    for step in ds.get('pipeline') or []:
        if not isinstance(step, dict) or 'LoadAnnotations' not in str(step.get('type', '')):
            continue
        piped = step.get('reduce_zero_label')
        if piped is not None and bool(piped) != value:
            raise UserInputError(
                f'{split} dataset {ds.get("type")} has reduce_zero_label={value} but its '
                f'LoadAnnotations step sets reduce_zero_label={bool(piped)}; mmseg refuses the '
                f'mismatch at the first sample: set the same value in both (ADE20K: True)'
            )
    return value


def _read_label(path: str) -> Optional[np.ndarray]:
    """A label map as mmseg's ``LoadAnnotations`` reads it (Pillow: a palette PNG gives its
    indices, not colours), or None if it does not decode."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError):
        return None


def check_seg_contents(ds: dict, split: str = 'train') -> None:
    """Check an mmseg folder dataset (images + label maps) described by ``ds``."""
    root = ds.get('data_root', '') or ''
    prefix = ds.get('data_prefix', {}) or {}
    img_dir = osp.join(root, prefix.get('img_path', ''))
    seg_dir = osp.join(root, prefix.get('seg_map_path', ''))
    img_suffix = ds.get('img_suffix', '.jpg')
    seg_suffix = ds.get('seg_map_suffix', '.png')
    ann = ds.get('ann_file')
    if ann:
        # A split list (VOC's ImageSets/Segmentation/*.txt): one image name per line.
        list_path = ann if osp.isabs(ann) else osp.join(root, ann)
        if not osp.isfile(list_path):
            raise UserInputError(
                f'{split} split list {list_path} does not exist; check data_root and ann_file'
            )
        with open(list_path, encoding='utf-8', errors='replace') as f:
            names = [line.strip() for line in f if line.strip()]
        if not names:
            raise UserInputError(
                f'{split} split list {list_path} names no images; one image '
                f'name (without suffix) per line'
            )
        images = [n + img_suffix for n in names]
        missing = [i for i in images if not osp.isfile(osp.join(img_dir, i))]
        if missing:
            raise UserInputError(
                f'image {osp.join(img_dir, missing[0])} named in {list_path} '
                f'does not exist{_more(len(missing) - 1)}; add it or remove '
                f'its line'
            )
    else:
        images = sorted(
            osp.relpath(osp.join(d, f), img_dir)
            for d, _, files in os.walk(img_dir)
            for f in files
            if f.endswith(img_suffix)
        )
    if not images:
        raise UserInputError(
            f'{split} image folder {img_dir} holds no *{img_suffix} files; '
            f'put the images there or fix data_prefix.img_path/img_suffix'
        )
    if not prefix.get('seg_map_path'):
        return
    missing = [
        i for i in images if not osp.isfile(osp.join(seg_dir, i[: -len(img_suffix)] + seg_suffix))
    ]
    if missing:
        path = osp.join(seg_dir, missing[0][: -len(img_suffix)] + seg_suffix)
        raise UserInputError(
            f'label map {path} for image {osp.join(img_dir, missing[0])} does '
            f'not exist{_more(len(missing) - 1)}; add it or remove the image'
        )
    classes = _seg_classes(ds)
    reduce_zero = effective_reduce_zero_label(ds, split)
    top = None if classes is None else len(classes) - (0 if reduce_zero else 1)
    for rel in _spread(images, LABEL_LIMIT):
        seg_path = osp.join(seg_dir, rel[: -len(img_suffix)] + seg_suffix)
        label = _read_label(seg_path)
        if label is None:
            raise UserInputError(
                f'label map {seg_path} is corrupt or not an image ({split} split); re-export it'
            )
        truncated = file_is_truncated(seg_path)
        if truncated:
            raise UserInputError(
                f'label map {seg_path} is truncated ({truncated}) ({split} split); re-export it'
            )
        if label.ndim == 3:
            raise UserInputError(
                f'label map {seg_path} has {label.shape[2]} channels; label '
                f'maps hold one class index per pixel: save it single-channel'
            )
        w, h, _ = image_header(osp.join(img_dir, rel), f'{split} split')
        if label.shape != (h, w):
            raise UserInputError(
                f'label map {seg_path} is {label.shape[1]}x{label.shape[0]} '
                f'but its image is {w}x{h}; they must match pixel for pixel'
            )
        if top is not None:
            values = np.unique(label)
            bad = values[(values > top) & (values != 255)]
            if bad.size:
                raise UserInputError(
                    f'label map {seg_path} has value {int(bad.max())} but the dataset has '
                    f'{len(classes)} classes (valid: 0-{top}, 255 = ignore'
                    f'{", 0 = ignored under reduce_zero_label" if reduce_zero else ""}); '
                    f'remap the labels or set metainfo.classes'
                )


def check_dataset_contents(cfg, splits=('train', 'val', 'test')) -> None:
    """Run the content checks on every dataset of ``splits`` (after the path checks)."""
    if os.environ.get('MMATTN_SKIP_DATA_CHECKS'):
        return
    seen = set()
    for split, ds in iter_split_datasets(cfg, splits):
        root = ds.get('data_root', '') or ''
        ann = ds.get('ann_file', '') or ''
        ann_path = ann if (not ann or osp.isabs(ann)) else osp.join(root, ann)
        key = (ann_path, str(ds.get('data_prefix')))
        if key in seen:
            continue
        seen.add(key)
        if ann_path.endswith('.json'):
            prefix = ds.get('data_prefix', {}) or {}
            img_dir = osp.join(root, prefix.get('img', prefix.get('img_path', '')))
            classes = (ds.get('metainfo') or {}).get('classes')
            with_mask = any(
                isinstance(t, dict)
                and 'LoadAnnotations' in str(t.get('type'))
                and t.get('with_mask')
                for t in ds.get('pipeline') or []
            )
            for note in check_coco_contents(ann_path, img_dir, classes, split, with_mask):
                print(f'note: {note}', file=sys.stderr)
        elif 'seg_map_path' in (ds.get('data_prefix') or {}):
            check_seg_contents(ds, split)


def compare_state_dicts(model_sd: dict, ckpt_sd: dict, where: str, strict: bool) -> None:
    """Fail when a checkpoint evidently belongs to another family or variant.

    ``strict`` (backbone weights, resume): at least 90% of the model's and of the
    checkpoint's tensors must match by name and shape, and no common name may differ in shape.
    Otherwise (``load_from`` a full detector, where a new ``num_classes`` legitimately changes
    the heads): at least half of the model's tensors must match.
    """
    common = [k for k in model_sd if k in ckpt_sd]
    shape_bad = [
        k for k in common if tuple(getattr(ckpt_sd[k], 'shape', ())) != tuple(model_sd[k].shape)
    ]
    matched = len(common) - len(shape_bad)
    frac_model = matched / max(len(model_sd), 1)
    frac_ckpt = matched / max(len(ckpt_sd), 1)
    if strict:
        bad = frac_model < 0.9 or frac_ckpt < 0.9 or shape_bad
    else:
        bad = frac_model < 0.5
    if not bad:
        return
    detail = ''
    if shape_bad:
        k = shape_bad[0]
        detail = (
            f'; e.g. {k} is {tuple(ckpt_sd[k].shape)} in the checkpoint but '
            f'{tuple(model_sd[k].shape)} in the model'
        )
    else:
        missing = [k for k in model_sd if k not in ckpt_sd]
        if missing:
            detail = f"; e.g. the model's {missing[0]} is absent"
        elif ckpt_sd:
            detail = f"; e.g. the checkpoint's {next(iter(ckpt_sd))} is unknown to the model"
    raise UserInputError(
        f'{where} does not fit the model: {matched} of its {len(model_sd)} tensors match by '
        f'name and shape ({len(ckpt_sd)} in the checkpoint){detail}. It is from another family '
        f'or variant: pick the checkpoint of this arch, or convert the official one with '
        f'tools/model_converters'
    )


def model_state_dict(sd: dict, prefix: Optional[str] = None) -> dict:
    """The model weights of a loaded checkpoint: under ``state_dict`` if there, only the keys
    under ``prefix`` (stripped), without DDP's ``module.``."""
    if 'state_dict' in sd and isinstance(sd['state_dict'], dict):
        sd = sd['state_dict']
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}


def check_checkpoint_file(path: str, what: str) -> None:
    """A local checkpoint must exist and be complete before a run starts."""
    from .checkpoint import is_complete_checkpoint

    if not path or '://' in str(path):
        return
    if not osp.isfile(path):
        raise UserInputError(f'{what} {path} does not exist; check the path')
    if not is_complete_checkpoint(path):
        raise UserInputError(
            f'{what} {path} is truncated or corrupt (its archive is incomplete or fails the '
            f'CRC check); re-download or re-convert it, or use --resume without a path to take '
            f'the newest complete checkpoint'
        )
