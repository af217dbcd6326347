"""Generate the model-zoo tables from the configs and the config folders' READMEs.

For every config under ``configs/<method>/`` (``_base_`` and ``shapes`` excluded) we report
the task, head, backbone and schedule (from the config and its name), our params and FLOPs
(:func:`mmattn.analysis.flops.config_complexity` at the papers' input size; results are
cached in a JSON file keyed by a hash of the config's model settings, since tracing a COCO
detector is slow) and the paper's numbers found in the folder's README.

README parsing is tolerant: every markdown table is read; a row belongs to a config when it
contains the config's file name (or stem), or else the config's backbone name (``Agent-PVT-T``
for ``agent-pvt-t``) together with its head (``Mask R-CNN``, ``RetinaNet``, ``UperNet``,
``Semantic FPN``/``FPN``) in the row or in the heading above the table. Columns whose header
names a metric (AP, mIoU, mAcc, Top-1, ...) become the paper's metrics; ``Params``/``FLOPs``
columns are shown next to ours.
"""

import glob
import hashlib
import json
import os
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Tuple

HEADS = {
    'mask-rcnn': ('Mask R-CNN', ('mask r-cnn', 'mask rcnn', 'maskrcnn', 'mask-rcnn')),
    'retinanet': ('RetinaNet', ('retinanet',)),
    'upernet': ('UperNet', ('upernet', 'uper net')),
    'fpn': ('Semantic FPN', ('semantic fpn', 'semanticfpn', 'fpn')),
    'eanet': ('EANet', ('eanet',)),
}
TASKS = {
    'det': 'Object detection and instance segmentation (COCO)',
    'seg': 'Semantic segmentation (ADE20K and others)',
}
METRIC_RE = re.compile(r'(\bAP|mIoU|mAcc|aAcc|Top-?1|Top-?5|\bAcc|PQ|box|mask|result|metric)', re.I)
PARAMS_RE = re.compile(r'(?<!hyper-)(?<!hyper )\bparam', re.I)
FLOPS_RE = re.compile(r'flop|macs', re.I)


def _norm(s: str) -> str:
    return re.sub(r'[^a-z0-9]', '', s.lower())


# ------------------------------------------------------------------------ configs
def discover_configs(root: str = 'configs') -> Dict[str, List[str]]:
    """``{method folder: [config paths]}`` for every method folder under ``root``."""
    out = {}
    for folder in sorted(glob.glob(osp.join(root, '*'))):
        name = osp.basename(folder)
        if not osp.isdir(folder) or name.startswith('_') or name == 'shapes':
            continue
        paths = sorted(glob.glob(osp.join(folder, '*.py')))
        if paths:
            out[name] = paths
    return out


def name_fields(path: str) -> dict:
    """Fields of an mmdet/mmseg style config name (``head_backbone_[neck_]schedule_data``)."""
    stem = osp.splitext(osp.basename(path))[0]
    parts = stem.split('_')
    head = parts[0]
    backbone = parts[1] if len(parts) > 1 else ''
    schedule = ''
    for p in parts[2:]:
        m = re.search(r'(\d+x|\d+k|ms-crop-\d+x|ms-\d+x)$', p)
        if m or re.match(r'\d+xb\d+-\d+k', p):
            schedule = p.split('-', 1)[1] if re.match(r'\d+xb\d+-', p) else p
    data = parts[-1] if len(parts) > 2 else ''
    return dict(stem=stem, head=head, backbone=backbone, schedule=schedule, data=data)


def model_key(cfg) -> str:
    """Hash of what decides params/FLOPs: the model settings and the input shape."""
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    text = json.dumps(model, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_cache(path: Optional[str]) -> dict:
    if path and osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    return {}


def save_cache(cache: dict, path: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(cache, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def complexity(
    path: str,
    cache: dict,
    compute: bool = True,
    cfg=None,
    shape: Optional[Tuple[int, int]] = None,
    flops: bool = True,
) -> Optional[dict]:
    """Params/FLOPs of a config's whole model at ``shape`` (default: the papers'), cached.

    With ``flops=False`` only the parameters are counted (building the model is quick,
    tracing a COCO detector is not); such an entry has ``flops=None`` and is completed by a
    later call with ``flops=True``.
    """
    from mmengine.config import Config

    from .flops import (
        DEFAULT_SHAPES,
        build_model_from_cfg,
        config_complexity,
        count_params,
        task_of,
    )

    cfg = cfg if cfg is not None else Config.fromfile(path)
    key = model_key(cfg)
    hit = cache.get(path.replace(os.sep, '/'))
    if hit and hit.get('key') == key and (shape is None or hit['shape'] == list(shape)):
        if hit.get('flops') is not None or not (compute and flops):
            return hit
    if not compute:
        return None
    if flops:
        res = config_complexity(cfg, shape)
        entry = dict(
            key=key,
            shape=list(res['shape']),
            params=res['params'],
            flops=res['flops'],
            task=res['task'],
            uncounted=res['uncounted_products'],
        )
    else:
        task = task_of(cfg)
        entry = dict(
            key=key,
            shape=list(shape or DEFAULT_SHAPES[task]),
            task=task,
            flops=None,
            params=count_params(build_model_from_cfg(cfg)),
            uncounted={},
        )
    cache[path.replace(os.sep, '/')] = entry
    return entry


def describe(path: str, cfg=None) -> dict:
    """Task, head and backbone description of a config (no model is built)."""
    from mmengine.config import Config

    from .flops import task_of

    cfg = cfg if cfg is not None else Config.fromfile(path)
    fields = name_fields(path)
    bb = cfg.model.get('backbone', {})
    bb_type = str(bb.get('type', '')).split('.')[-1]
    arch = bb.get('arch', bb.get('depth', ''))
    arch = arch if isinstance(arch, (str, int)) else 'custom'
    return dict(fields, task=task_of(cfg), backbone_type=bb_type, arch=arch)


# ------------------------------------------------------------------------ READMEs
def parse_tables(text: str) -> List[dict]:
    """Markdown tables: ``{'heading', 'headers', 'rows'}`` (cells stripped)."""
    tables, heading, lines = [], '', text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith('#'):
            heading = line.lstrip('#').strip()
        if (
            line.startswith('|')
            and i + 1 < len(lines)
            and re.match(r'^\|?\s*:?-{2,}', lines[i + 1].strip())
        ):
            headers = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith('|'):
                rows.append(_cells(lines[i].strip()))
                i += 1
            tables.append(dict(heading=heading, headers=headers, rows=rows))
            continue
        i += 1
    return tables


def _cells(line: str) -> List[str]:
    return [c.strip() for c in line.strip().strip('|').split('|')]


def _head_in(text: str, head: str) -> bool:
    _, aliases = HEADS.get(head, (head, (head,)))
    low = text.lower()
    for alias in aliases:
        if alias == 'fpn':
            # 'fpn' alone also appears in detector names ("Mask R-CNN + FPN")
            if re.search(r'semantic\s*fpn', low) or (
                re.search(r'\bfpn\b', low)
                and not any(a in low for a in ('mask r-cnn', 'mask rcnn', 'retinanet'))
            ):
                return True
        elif alias in low:
            return True
    return False


def expand_braces(text: str) -> List[str]:
    """``'fpn_x-{t,s}_40k'`` -> ``['fpn_x-t_40k', 'fpn_x-s_40k']`` (READMEs list variants so)."""
    m = re.search(r'\{([^{}]*)\}', text)
    if not m:
        return [text]
    return [
        v
        for alt in m.group(1).split(',')
        for v in expand_braces(text[: m.start()] + alt.strip() + text[m.end() :])
    ]


def _names_config(cell: str, stem: str) -> bool:
    """Whether a cell names the config (its file name or stem, brace lists expanded)."""
    for variant in expand_braces(cell):
        if re.search(rf'(^|[^\w-]){re.escape(stem)}(\.py)?($|[^\w-])', variant):
            return True
    return False


def match_rows(info: dict, tables: List[dict]) -> Optional[Tuple[dict, List[str]]]:
    """The README row of a config (see the module docstring), or None."""
    stem = info['stem']
    for t in tables:
        for row in t['rows']:
            if any(_names_config(c, stem) for c in row):
                return t, row
    bb = _norm(info['backbone'])
    if not bb:
        return None
    sched = info.get('schedule', '')
    candidates = []
    for t in tables:
        for row in t['rows']:
            text = ' '.join(row)
            if bb not in [_norm(c) for c in row] and not re.search(
                rf'(^|[^a-z0-9]){re.escape(bb)}($|[^a-z0-9])', _spaced(text)
            ):
                continue
            context = text + ' ' + t['heading'] + ' ' + ' '.join(t['headers'])
            if not _head_in(context, info['head']):
                continue
            score = 1 + (sched and sched.lower() in text.lower())
            candidates.append((score, t, row))
    if not candidates:
        return None
    candidates.sort(key=lambda c: -c[0])
    return candidates[0][1], candidates[0][2]


def _spaced(text: str) -> str:
    """Lower-case text whose words are normalised but still separated."""
    return ' '.join(_norm(w) for w in re.split(r'[\s|,/()]+', text) if w)


def _variant_only(cell: str, variant: str) -> str:
    """Keep the number labelled with this variant in cells like ``'mIoU: T 37.2, S 41.0'``.

    A row that covers several configs (``fpn_x-{t,s}_...``) may label its numbers by variant
    letter; the numbers of other variants must not be shown against this config.
    """
    labelled = re.findall(r'\b([TSMLB])\s+(\d+(?:\.\d+)?)', cell)
    if not labelled:
        return cell
    mine = [num for letter, num in labelled if letter.lower() == variant.lower()]
    remarks = ' '.join(re.findall(r'\([^)]*\)', cell))  # e.g. "(unverified)"
    return f'{mine[0]} {remarks}'.strip() if mine else ''


def paper_numbers(table: dict, row: List[str], variant: str = '') -> dict:
    """Metrics, params and FLOPs columns of a README row.

    Args:
        table (dict): From :func:`parse_tables`.
        row (list[str]): The matched row.
        variant (str): The config's size letter (``'t'`` of ``agent-pvt-t``), used for rows
            covering several variants. Defaults to ''.
    """
    metrics, params, flops, source = {}, '', '', ''
    for header, cell in zip(table['headers'], row):
        cell = _paper_part(header, cell)
        if not cell or cell in ('-', '—'):
            continue
        if PARAMS_RE.search(header):
            params = cell
        elif FLOPS_RE.search(header):
            flops = cell
        elif re.search(r'source|ref', header, re.I):
            source = cell
        elif METRIC_RE.search(header) and re.search(r'\d', cell):
            cell = _variant_only(cell, variant) if variant else cell
            if cell:
                metrics[header] = cell
    return dict(metrics=metrics, params=params, flops=flops, source=source)


def _paper_part(header: str, cell: str) -> str:
    """For ``'Params (official / mmattn)'`` columns keep the official/paper part of the cell."""
    hparts, cparts = header.split('/'), cell.split('/')
    if len(hparts) > 1 and len(hparts) == len(cparts):
        for i, h in enumerate(hparts):
            if re.search(r'official|paper|published', h, re.I):
                return cparts[i].strip()
    return cell


def readme_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith('# '):
            return line[2:].strip()
    return fallback


# ------------------------------------------------------------------------ render
def _fmt(n: Optional[float], div: float, unit: str) -> str:
    return '—' if n is None else f'{n / div:.1f}{unit}'


def _to_number(text: str) -> Optional[float]:
    m = re.search(r'(\d+(?:\.\d+)?)', text or '')
    return float(m.group(1)) if m else None


def build_rows(
    configs_root: str,
    cache: dict,
    compute: bool = True,
    progress: bool = False,
    only: Optional[str] = None,
    on_update: Optional[Callable[[dict], None]] = None,
    shape: Optional[Tuple[int, int]] = None,
    flops_only: Optional[str] = None,
) -> List[dict]:
    """One dict per config with everything the tables show.

    Args:
        configs_root (str): The configs folder.
        cache (dict): Params/FLOPs cache, updated in place.
        compute (bool): Trace configs missing from the cache. Defaults to True.
        progress (bool): Show a progress bar. Defaults to False.
        only (str, optional): Regex; trace only matching config paths.
        on_update (callable, optional): Called with the cache after each traced config.
        shape (tuple, optional): Input (H, W) instead of the papers' sizes.
        flops_only (str, optional): Regex; trace FLOPs only for matching config paths and
            count just the parameters of the others.
    """
    from mmengine.config import Config

    items = []
    zoo = discover_configs(configs_root)
    jobs = [(method, p) for method, paths in zoo.items() for p in paths]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc='model zoo', unit='config')
    readmes = {}
    for method, path in jobs:
        if method not in readmes:
            readme = osp.join(configs_root, method, 'README.md')
            text = open(readme, encoding='utf-8').read() if osp.isfile(readme) else ''
            readmes[method] = (text, parse_tables(text), readme if text else '')
        text, tables, readme = readmes[method]
        cfg = Config.fromfile(path)
        info = describe(path, cfg)
        todo = compute and (only is None or re.search(only, path))
        try:
            cx = complexity(
                path,
                cache,
                bool(todo),
                cfg,
                shape,
                flops=not flops_only or bool(re.search(flops_only, path)),
            )
        except Exception as err:  # one broken config must not stop the zoo
            from mmengine.logging import MMLogger

            MMLogger.get_current_instance().warning(f'{path}: {type(err).__name__}: {err}')
            cx = None
        if todo and on_update is not None:
            on_update(cache)
        found = match_rows(info, tables)
        variant = info['backbone'].rsplit('-', 1)[-1] if '-' in info['backbone'] else ''
        paper = (
            paper_numbers(*found, variant=variant)
            if found
            else dict(metrics={}, params='', flops='', source='')
        )
        items.append(
            dict(
                info,
                method=method,
                path=path,
                readme=readme,
                title=readme_title(text, method),
                complexity=cx,
                paper=paper,
            )
        )
    return items


def render(items: List[dict], link_prefix: str = '../') -> str:
    """The markdown of docs/model_zoo.md."""
    out = [
        '# Model zoo',
        '',
        '<!-- Generated by tools/analysis_tools/model_zoo.py from the configs and the config '
        "folders' READMEs; do not edit by hand. -->",
        '',
        'Params and FLOPs are **ours**, counted by `tools/analysis_tools/get_flops.py` '
        '(multiply-adds; attention products included) on the whole detector/segmentor at the '
        "papers' input sizes: 800x1280 for COCO detectors and 512x2048 for ADE20K "
        "segmentors. Metrics are **the papers' reported numbers** (we did not train these "
        "recipes), as listed with their sources in each folder's README; *paper* "
        'params/FLOPs are shown next to ours where the README gives them. `—`: not reported '
        'or not yet computed.',
        '',
    ]
    methods = list(dict.fromkeys(i['method'] for i in items))
    for method in methods:
        group = [i for i in items if i['method'] == method]
        title = group[0]['title']
        out += [f'## {title}', '']
        readme = group[0]['readme']
        if readme:
            out += [f'Details, sources and BibTeX: [{readme}]({link_prefix}{readme}).', '']
        for task in ('det', 'seg'):
            rows = [i for i in group if i['task'] == task]
            if not rows:
                continue
            metric_names = list(dict.fromkeys(k for i in rows for k in i['paper']['metrics']))
            out += [f'### {TASKS[task]}', '']
            header = [
                'Config',
                'Head',
                'Backbone',
                'Schedule',
                'Params',
                'FLOPs',
                'Params (paper)',
                'FLOPs (paper)',
            ] + [f'{m} (paper)' for m in metric_names]
            out.append('| ' + ' | '.join(header) + ' |')
            out.append('|' + '---|' * len(header))
            for i in rows:
                cx = i['complexity'] or {}
                head = HEADS.get(i['head'], (i['head'],))[0]
                cells = [
                    f'[{i["stem"]}]({link_prefix}{i["path"]})',
                    head,
                    i['backbone'],
                    i['schedule'] or '—',
                    _fmt(cx.get('params'), 1e6, 'M'),
                    _fmt(cx.get('flops'), 1e9, 'G'),
                    i['paper']['params'] or '—',
                    i['paper']['flops'] or '—',
                ]
                cells += [i['paper']['metrics'].get(m, '—') for m in metric_names]
                out.append('| ' + ' | '.join(cells) + ' |')
            out.append('')
    return '\n'.join(out).rstrip() + '\n'


def comparison(items: List[dict]) -> List[dict]:
    """Ours vs paper params/FLOPs where both exist (for reports); None where not counted."""
    rows = []
    for i in items:
        cx, paper = i['complexity'] or {}, i['paper']
        p_params, p_flops = _to_number(paper['params']), _to_number(paper['flops'])
        if cx and (p_params or p_flops):
            flops = cx.get('flops')
            rows.append(
                dict(
                    config=i['stem'],
                    params=cx['params'] / 1e6,
                    paper_params=p_params,
                    flops=None if flops is None else flops / 1e9,
                    paper_flops=p_flops,
                )
            )
    return rows
