"""Run the real recipes as a new user does, on tiny datasets in the real layouts.

For each recipe: one short training run through ``tools/train.py`` and one test pass of the
checkpoint it wrote through ``tools/test.py``, in a workspace that looks like a user's checkout:
``data/coco``, ``data/ade/ADEChallengeData2016`` and ``data/VOCdevkit/VOC2012`` hold tiny
datasets in the standard layouts (the 80 real COCO categories with their gapped ids, ADE20K
label values 0-150, VOC palette PNGs with 255 borders and the aug split; written by
:mod:`mmattn.datasets.real_layout`), and no pretrained file exists when testing.

The recipes run unchanged except for:

* the schedule: 1 epoch (2 iterations on the fixture) or 1 iteration, no validation during
  training;
* the backbone's ImageNet checkpoint: no real one is on this machine, so a randomly initialised
  one is written where the recipe expects it (``pretrained/<name>.pth``, or a local file
  replacing a ``torchvision://`` / ``open-mmlab://`` URL, which the table marks) for training,
  and deleted before testing (testing must not need it);
* with ``--scale S < 1`` (the test suite), every image scale and crop size in the pipelines
  and the data preprocessor is multiplied by S, so full-size models run in seconds.

    python tools/misc/smoke_recipes.py [RECIPE ...] [--scale 1] [--out docs/smoke_recipes.md]

Without RECIPE, every recipe under ``configs/<family>/`` runs (``configs/shapes`` is the demo
data's, tested elsewhere). Prints a table (recipe, train ok, test ok, seconds, metric keys) and
exits 1 if any recipe failed.
"""

import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

#: Pipeline fields that hold an image scale or a crop size (scaled by ``--scale``).
_SCALE_KEYS = ('scale', 'scales', 'crop_size', 'img_scale')


def _size_rank(path: str) -> int:
    """0 for tiny variants ... 3 for base/large ones, from the recipe's name."""
    name = osp.basename(path)
    for rank, marks in enumerate(
        (
            ('-t_', '-t-', 'r50'),
            ('-s_', '-s-'),
            ('-m_', '-m-'),
            ('-b_', '-b-', '-l_', '-l-', 'r101'),
        )
    ):
        if any(m in name for m in marks):
            return rank
    return 1


def all_recipes() -> List[str]:
    """Every recipe under ``configs/<family>/``, smallest variants first (so that a sweep cut
    short has covered every family and head)."""
    recipes = []
    for folder in sorted(glob.glob(osp.join(REPO, 'configs', '*'))):
        name = osp.basename(folder)
        if name.startswith('_') or name == 'shapes' or not osp.isdir(folder):
            continue
        # configs on the bundled shapes data (e.g. the comparison's CPU-sized ones) are not
        # recipes for the real datasets
        recipes += sorted(
            p for p in glob.glob(osp.join(folder, '*.py')) if not p.endswith('_shapes.py')
        )
    return sorted(recipes, key=lambda r: (_size_rank(r), r))


def _scaled(value, factor: float):
    """Multiply every number of a (nested) scale value by ``factor`` (at least 32 px)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(32, int(round(value * factor / 32)) * 32)
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled(v, factor) for v in value)
    return value


def _fmt(value) -> str:
    """A value as ``--cfg-options`` parses it back (tuples in parentheses, no spaces)."""
    if isinstance(value, tuple):
        return '(' + ','.join(_fmt(v) for v in value) + (',)' if len(value) == 1 else ')')
    if isinstance(value, list):
        return '[' + ','.join(_fmt(v) for v in value) + ']'
    return str(value)


def scale_options(cfg, factor: float) -> List[str]:
    """``--cfg-options`` entries that multiply the pipelines' image scales by ``factor``."""
    opts = []

    def walk(node, path: str):
        if isinstance(node, dict):
            if 'type' in node:
                for key in _SCALE_KEYS:
                    if key in node and node[key] is not None:
                        opts.append(f'{path}.{key}={_fmt(_scaled(node[key], factor))}')
            for key, value in node.items():
                if key in ('pipeline', 'transforms', 'dataset', 'datasets'):
                    walk(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, item in enumerate(node):
                walk(item, f'{path}.{i}')

    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            walk(loader.get('dataset'), f'{split}_dataloader.dataset')
    model = cfg.get('model', {})
    if (model.get('data_preprocessor') or {}).get('size') is not None:
        opts.append(
            'model.data_preprocessor.size='
            + _fmt(_scaled(tuple(model['data_preprocessor']['size']), factor))
        )
    test_cfg = model.get('test_cfg') or {}
    for key in ('crop_size', 'stride'):
        if test_cfg.get(key) is not None:
            opts.append(f'model.test_cfg.{key}={_fmt(_scaled(tuple(test_cfg[key]), factor))}')
    return opts


def schedule_options(cfg) -> List[str]:
    """Shorten the schedule to one epoch or one iteration, without validation after it.

    (MMEngine's loops validate after the last epoch/iteration whatever ``val_interval`` says;
    a ``val_begin`` past the end skips it: the test pass evaluates the checkpoint instead.)
    """
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' in train_cfg or 'Epoch' in str(train_cfg.get('type', '')):
        return ['train_cfg.max_epochs=1', 'train_cfg.val_begin=1000']
    return ['train_cfg.max_iters=1', 'train_cfg.val_begin=1000']


def _pretrained_inits(node, path: str = 'model'):
    """Yield ``(cfg-options key of the checkpoint, module config, init dict)`` of every
    ``Pretrained`` init in the model, including mmseg's model-level ``pretrained=`` (which
    ``EncoderDecoder`` hands to the backbone)."""
    if not isinstance(node, dict):
        return
    init = node.get('init_cfg')
    if isinstance(init, dict) and str(init.get('type', '')).endswith('Pretrained'):
        yield f'{path}.init_cfg.checkpoint', node, init
    if isinstance(node.get('pretrained'), str) and isinstance(node.get('backbone'), dict):
        yield f'{path}.pretrained', node['backbone'], dict(checkpoint=node['pretrained'])
    for key, value in node.items():
        if key != 'init_cfg' and isinstance(value, dict):
            yield from _pretrained_inits(value, f'{path}.{key}')


def write_stand_in_weights(cfg, workspace: str) -> (List[str], List[str], Optional[str]):
    """Write randomly initialised weights where the recipe's ``Pretrained`` inits point.

    Returns the files written, ``--cfg-options`` entries for URL checkpoints (replaced by a local
    file), and a note for the table (or None).
    """
    import torch
    from mmengine.registry import init_default_scope

    import mmattn.models  # noqa: F401  (registers the mmattn backbones)

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.get('default_scope') == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    written, opts, note = [], [], None
    for key, module_cfg, init in _pretrained_inits(cfg.get('model', {})):
        ckpt = str(init.get('checkpoint', ''))
        args = {
            k: v for k, v in module_cfg.items() if k not in ('init_cfg', '_delete_', 'pretrained')
        }
        module = MODELS.build(args)
        prefix = init.get('prefix')
        state = {
            (f'{prefix.rstrip(".")}.{k}' if prefix else k): v
            for k, v in module.state_dict().items()
        }
        if '://' in ckpt:
            target = osp.join(
                workspace, 'pretrained', ckpt.split('://', 1)[1].replace('/', '_') + '.pth'
            )
            opts.append(f'{key}={target}')
            note = f'{ckpt} replaced by a local stand-in'
        else:
            target = ckpt if osp.isabs(ckpt) else osp.join(workspace, ckpt)
        os.makedirs(osp.dirname(target), exist_ok=True)
        torch.save(dict(state_dict=state), target)
        written.append(target)
    return written, opts, note


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith('error:') or 'Error' in line:
            return line[:300]
    return lines[-1][:300] if lines else 'no output'


def run_recipe(
    recipe: str, workspace: str, scale: float = 1.0, timeout: Optional[float] = None
) -> Dict:
    """Train and test one recipe in ``workspace``; return a row of the table."""
    from mmengine.config import Config

    cfg = Config.fromfile(recipe)
    name = osp.splitext(osp.basename(recipe))[0]
    work = osp.join(workspace, 'work_dirs', name)
    shutil.rmtree(work, ignore_errors=True)
    row = dict(
        recipe=osp.relpath(recipe, REPO),
        train=False,
        test=False,
        seconds=0.0,
        metrics=[],
        note='',
        error='',
    )
    start = time.time()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    opts = schedule_options(cfg) + (scale_options(cfg, scale) if scale != 1 else [])
    written = []
    try:
        try:
            written, url_opts, note = write_stand_in_weights(cfg, workspace)
        except Exception as err:  # noqa: BLE001  train.py below reports the config error
            written, url_opts, note = [], [], f'no stand-in weights ({type(err).__name__})'
        row['note'] = note or ''
        train = subprocess.run(
            [
                sys.executable,
                osp.join(REPO, 'tools', 'train.py'),
                recipe,
                '--work-dir',
                work,
                '--cfg-options',
                *opts,
                *url_opts,
            ],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        os.makedirs(work, exist_ok=True)
        with open(osp.join(work, 'train_output.log'), 'w') as f:
            f.write(train.stdout + train.stderr)
        ckpt_pointer = osp.join(work, 'last_checkpoint')
        row['train'] = train.returncode == 0 and osp.isfile(ckpt_pointer)
        if not row['train']:
            row['error'] = 'train: ' + _last_error(train.stderr or train.stdout)
            return row
        for path in written:  # testing must not need the backbone's ImageNet file
            os.remove(path)
        written = []
        with open(ckpt_pointer) as f:
            ckpt = f.read().strip()
        test = subprocess.run(
            [
                sys.executable,
                osp.join(REPO, 'tools', 'test.py'),
                recipe,
                ckpt,
                '--work-dir',
                osp.join(work, 'test'),
                *(['--cfg-options', *opts[2:]] if len(opts) > 2 else []),
            ],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        metrics_file = osp.join(work, 'test', 'metrics.json')
        row['test'] = test.returncode == 0 and osp.isfile(metrics_file)
        if row['test']:
            with open(metrics_file) as f:
                row['metrics'] = sorted(json.load(f))
        else:
            row['error'] = 'test: ' + _last_error(test.stderr or test.stdout)
        return row
    except subprocess.TimeoutExpired as err:
        row['error'] = f'timed out after {err.timeout:.0f}s'
        return row
    finally:
        for path in written:
            if osp.exists(path):
                os.remove(path)
        row['seconds'] = round(time.time() - start, 1)


def _metric_summary(keys: List[str]) -> str:
    short = [k.split('/')[-1] for k in keys]
    return ', '.join(short[:4]) + (f' (+{len(short) - 4})' if len(short) > 4 else '')


def format_table(rows: List[Dict]) -> str:
    lines = [
        '| recipe | train | test | seconds | metric keys | note |',
        '|---|---|---|---|---|---|',
    ]
    for r in rows:
        note = r['error'] or r['note']
        lines.append(
            f'| `{osp.basename(r["recipe"])}` | {"ok" if r["train"] else "FAIL"} | '
            f'{"ok" if r["test"] else ("FAIL" if r["train"] else "-")} | '
            f'{r["seconds"]:.0f} | {_metric_summary(r["metrics"])} | '
            f'{note.replace("|", "/")} |'
        )
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('recipes', nargs='*', help="recipe configs (default: all families')")
    parser.add_argument(
        '--workspace',
        help='folder for data/, pretrained/ and work_dirs/ '
        '(default: a temporary folder, removed at the end)',
    )
    parser.add_argument(
        '--scale',
        type=float,
        default=1.0,
        help='multiply pipeline image scales and crops by this (default 1)',
    )
    parser.add_argument(
        '--timeout', type=float, default=None, help='seconds allowed per train or test command'
    )
    parser.add_argument('--out', help='also write the table (markdown) to this file')
    parser.add_argument('--json', help='also write the rows as JSON to this file')
    args = parser.parse_args(argv)

    from mmattn.datasets.real_layout import make_real_layout
    from mmattn.utils.atomic import atomic_write
    from mmattn.utils.checkpoint import write_json_atomic

    recipes = [osp.abspath(r) for r in args.recipes] or all_recipes()
    missing = [r for r in recipes if not osp.isfile(r)]
    if missing:
        print(f'error: recipe {missing[0]} does not exist', file=sys.stderr)
        return 2
    workspace = args.workspace or tempfile.mkdtemp(prefix='mmattn-smoke-')
    os.makedirs(workspace, exist_ok=True)
    make_real_layout(osp.join(workspace, 'data'))
    rows, start = [], time.time()

    def report(final: bool):
        """The table so far; written after every recipe, so a sweep cut short keeps its rows."""
        wall = time.time() - start
        failed = sum(not (r['train'] and r['test']) for r in rows)
        summary = (
            f'{len(rows) - failed} of {len(rows)} recipes passed in {wall / 60:.1f} min'
            f'{"" if final else f" (sweep in progress: {len(recipes)} recipes)"} '
            f'(scale {args.scale:g}, {os.cpu_count()} CPU cores)'
        )
        table = format_table(rows)
        if args.out:
            cmd = ' '.join(['python tools/misc/smoke_recipes.py'] + list(argv or sys.argv[1:]))
            atomic_write(
                args.out,
                f'# Recipe smoke sweep\n\nEach recipe trained for one step '
                f'through tools/train.py and tested through tools/test.py on tiny '
                f"datasets in the real COCO / ADE20K layouts (see the tool's "
                f'docstring). Made by `{cmd}`.\n\n{table}\n\n{summary}\n',
            )
        if args.json:
            write_json_atomic(
                dict(rows=rows, wall_seconds=wall, scale=args.scale, complete=final), args.json
            )
        return table, summary, failed

    try:
        for recipe in recipes:
            row = run_recipe(recipe, workspace, args.scale, args.timeout)
            rows.append(row)
            status = 'ok' if row['train'] and row['test'] else 'FAIL ' + row['error']
            print(
                f'[{len(rows)}/{len(recipes)}] {osp.basename(recipe)}: {status} '
                f'({row["seconds"]:.0f}s)',
                flush=True,
            )
            report(final=False)
    finally:
        if not args.workspace:
            shutil.rmtree(workspace, ignore_errors=True)
    table, summary, failed = report(final=True)
    print(table)
    print(summary)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
