"""Structural checks of a COCO instances JSON, before MMDetection reads it.

What MMDetection would otherwise do with each problem (mmdet 3.3, pycocotools 2.0):

* a key of the wrong type (a string ``bbox`` value, ``"annotations": {}``, a string width):
  a ``TypeError``/``KeyError`` traceback, or string arithmetic on boxes;
* duplicate annotation ids: ``AssertionError: Annotation ids ... are not unique``; duplicate
  image ids: all but one of the images silently vanish (the COCO index is a dict);
* a NaN or infinite box or polygon coordinate: trains on it;
* an annotation without ``area``: ``KeyError`` in ``parse_data_info``; a non-crowd
  annotation without ``segmentation`` in a mask recipe: ``KeyError`` in ``LoadAnnotations``;
* a malformed RLE (counts that do not add up to height x width, a size other than the
  image's): a mask of the wrong size or of garbage.

Each of these is an error (one line, naming the file, the annotation and the fix). One is not:
a polygon with fewer than 3 points (real COCO has a few) is dropped by MMDetection, and an
annotation left without a polygon becomes an ignored region; that is counted in one note.
"""

import math
from collections import Counter
from typing import Dict, List, Optional

from .cli import UserInputError


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rle_string_counts(s: str) -> Optional[List[int]]:
    """Decode pycocotools' compressed RLE string (``rleFrString``); None if malformed."""
    counts, p, m = [], 0, 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                return None
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if m > 2:
            x += counts[m - 2]
        counts.append(x)
        m += 1
    return counts


def _rle_problem(seg: dict, height: int, width: int) -> Optional[str]:
    size, counts = seg.get('size'), seg.get('counts')
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(map(_is_int, size))):
        return f'an RLE without a [height, width] size (size={str(size)[:40]})'
    if list(size) != [height, width]:
        return (
            f'an RLE of size {list(size)} on a {height}x{width} image (size is [height, '
            f"width] and must be the image's)"
        )
    if isinstance(counts, str):
        decoded = _rle_string_counts(counts)
        if decoded is None:
            return 'a compressed RLE whose counts string is not valid'
        counts = decoded
    elif not (isinstance(counts, list) and all(map(_is_int, counts))):
        return 'an RLE whose counts are neither a list of integers nor a compressed string'
    if any(c < 0 for c in counts):
        return 'an RLE with negative run lengths'
    if sum(counts) != height * width:
        return (
            f'an RLE whose runs cover {sum(counts)} pixels, not {height}x{width}={height * width}'
        )
    return None


def check_coco_structure(
    data: dict, ann_path: str, where: str, with_mask: bool = False
) -> List[str]:
    """Check the types, ids and geometry of a loaded COCO instances JSON.

    Args:
        data (dict): The loaded JSON (already known to hold the three lists' keys).
        ann_path (str): Its path, for the messages.
        where (str): ``'<split> annotations <path>'``, for the messages.
        with_mask (bool): The pipeline loads masks: non-crowd annotations need one.

    Returns:
        list[str]: Notes about what MMDetection will skip (with counts).

    Raises:
        UserInputError: The first problem, with how many more of its kind there are.
    """
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data[key], list):
            raise UserInputError(
                f'"{key}" in {ann_path} is a {type(data[key]).__name__}, not a '
                f'list; COCO keeps images, annotations and categories in lists'
            )
    for entry_key, key in (('images', 'id'), ('annotations', 'id'), ('categories', 'id')):
        entries = data[entry_key]
        bad = [e for e in entries if not isinstance(e, dict) or not _is_int(e.get(key))]
        if bad:
            raise UserInputError(
                f'an entry of "{entry_key}" has no integer "{key}" ({where}): '
                f'{str(bad[0])[:80]}; give every entry a unique integer id'
            )
        counts = Counter(e[key] for e in entries)
        dup = [i for i, n in counts.items() if n > 1]
        if dup:
            what = dict(images='image', annotations='annotation', categories='category')
            raise UserInputError(
                f'{what[entry_key]} id {dup[0]} occurs {counts[dup[0]]} times in "{entry_key}" '
                f'({where}){_more(len(dup) - 1)}; ids must be unique: renumber the duplicates'
            )
    images: Dict[int, dict] = {}
    for img in data['images']:
        name = img.get('file_name')
        if not isinstance(name, str) or not name:
            raise UserInputError(
                f'image {img["id"]} has file_name {name!r} ({where}); it must be '
                f"the image's path relative to the image folder"
            )
        for key in ('width', 'height'):
            if not _is_int(img.get(key)) or img[key] <= 0:
                raise UserInputError(
                    f'image {name} has {key} {img.get(key)!r} ({where}); it must '
                    f"be the image's size in pixels, a positive integer"
                )
        images[img['id']] = img
    for cat in data['categories']:
        if not isinstance(cat.get('name'), str):
            raise UserInputError(
                f'category {cat["id"]} has no "name" string ({where}); the '
                f"config's classes are matched by name"
            )

    degenerate, problems = 0, []
    for ann in data['annotations']:
        aid = ann['id']
        for key in ('image_id', 'category_id'):
            if key in ann and not _is_int(ann[key]):
                problems.append(
                    f'annotation {aid} has {key} {ann[key]!r} (a '
                    f'{type(ann[key]).__name__}); ids are integers: fix its type'
                )
        if problems and problems[-1].startswith(f'annotation {aid} '):
            continue
        img = images.get(ann.get('image_id'))
        if img is None:
            continue  # the contents check names annotations of unlisted images
        box = ann.get('bbox')
        if not (isinstance(box, (list, tuple)) and len(box) == 4):
            continue  # the contents check names it
        if not all(map(_is_number, box)):
            problems.append(
                f'annotation {aid} has bbox {box} with a non-number; boxes are '
                f'[x, y, w, h] numbers: fix its type'
            )
            continue
        if not all(math.isfinite(v) for v in box):
            problems.append(
                f'annotation {aid} on {img["file_name"]} has a non-finite bbox {box}'
                f'; fix or delete the annotation'
            )
            continue
        area = ann.get('area')
        if not _is_number(area) or not math.isfinite(area):
            problems.append(
                f'annotation {aid} has area {area!r}; MMDetection needs a finite '
                f'"area" (the mask or box area in pixels): add it'
            )
            continue
        crowd = ann.get('iscrowd', 0)
        if crowd not in (0, 1):
            problems.append(f'annotation {aid} has iscrowd {crowd!r}; it must be 0 or 1')
            continue
        seg = ann.get('segmentation')
        if seg is None or seg == []:
            if with_mask and not crowd:
                problems.append(
                    f'annotation {aid} on {img["file_name"]} has no segmentation '
                    f'but the pipeline loads masks; add its polygon or drop '
                    f'with_mask'
                )
            continue
        h, w = img['height'], img['width']
        if isinstance(seg, dict):
            why = _rle_problem(seg, h, w)
            if why:
                problems.append(
                    f'annotation {aid} on {img["file_name"]} has {why}; re-encode '
                    f'the mask (pycocotools.mask.encode)'
                )
            continue
        if not isinstance(seg, list) or not all(isinstance(p, list) for p in seg):
            problems.append(
                f'annotation {aid} has a segmentation that is neither polygons '
                f'(a list of [x1, y1, x2, y2, ...] lists) nor an RLE dict'
            )
            continue
        flat = [v for p in seg for v in p]
        if not all(map(_is_number, flat)) or not all(math.isfinite(v) for v in flat):
            problems.append(
                f'annotation {aid} on {img["file_name"]} has a polygon with a '
                f'non-finite or non-number coordinate; fix or delete it'
            )
            continue
        if any(len(p) < 6 or len(p) % 2 for p in seg):
            degenerate += 1
    if problems:
        raise UserInputError(f'{problems[0]} ({where}){_more(len(problems) - 1)}')
    notes = []
    if degenerate:
        notes.append(
            f'{degenerate} annotation(s) in {ann_path} have a polygon with fewer than 3 points '
            f'(or an odd number of coordinates); MMDetection drops such polygons, and an '
            f'annotation left without one becomes an ignored region (skipped: {degenerate})'
        )
    return notes


def _more(n: int) -> str:
    return f' (and {n} more such problem{"s" if n > 1 else ""})' if n else ''
