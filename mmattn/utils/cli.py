"""What ``tools/train.py`` and ``tools/test.py`` share: loading a config with checked
``--cfg-options``, pre-flight checks of the dataset paths, and turning user mistakes into one
clear line instead of a traceback wall.
"""

import difflib
import errno
import json
import os
import os.path as osp
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

from mmengine.config import Config, DictAction

from .checkpoint import UnsafeCheckpointError


class UserInputError(ValueError):
    """A mistake in what the user passed (path, config key, data): reported as one line."""


def parse_run_args(parser, argv=None):
    """Parse a tool's arguments plus the options train and test share (``--cfg-options``,
    ``--launcher``, ``--compile``, the launcher's ``--local-rank``, exported as ``LOCAL_RANK``).
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_cfg.max_iters=100; every key must already '
        'exist in the config (a misspelt key is an error)',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (pytorch: torchrun / tools/dist_*.sh; slurm: tools/slurm_*.sh)',
    )
    parser.add_argument(
        '--compile',
        nargs='?',
        const='inductor',
        metavar='BACKEND',
        help='torch.compile the backbone in place (dynamic shapes; checkpoints unchanged), '
        'with BACKEND (default inductor); the first iterations include compilation',
    )
    # torch.distributed.launch passes --local-rank (newer) or --local_rank (older).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _lookup(container, part):
    if isinstance(container, (list, tuple)) and part.lstrip('-').isdigit():
        idx = int(part)
        if -len(container) <= idx < len(container):
            return True, container[idx]
        return False, None
    if isinstance(container, dict) and part in container:
        return True, container[part]
    return False, None


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Reject ``--cfg-options`` keys that look like typos (they would otherwise pass silently).

    Every component but the last must exist. The last may be new (e.g.
    ``randomness.deterministic=True``) unless it closely resembles a key that exists there,
    which is almost always a misspelling (``train_cfg.max_iter`` for ``max_iters``).
    """
    for key in options or {}:
        node = cfg._cfg_dict
        parts = key.split('.')
        for depth, part in enumerate(parts):
            found, child = _lookup(node, part)
            if found:
                node = child
                continue
            where = '.'.join(parts[:depth]) or 'the top level'
            candidates = [str(k) for k in node.keys()] if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, candidates, n=1, cutoff=0.75)
            is_leaf = depth == len(parts) - 1
            if is_leaf and isinstance(node, dict) and not close:
                break  # a new key under an existing dict: allowed
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise UserInputError(
                f"--cfg-options key '{key}': '{part}' does not exist at {where}{hint}; "
                f'fix the spelling, or add the key to the config file'
            )


def resolve_config_path(path: str) -> str:
    """``mmattn::agent_attention/x.py`` -> the file in the installed package's ``.mim/configs``
    (any other ``package::`` prefix through MMEngine, as mmdet/mmseg configs are found)."""
    if '::' not in path:
        return path
    package, _, rel = path.partition('::')
    if package == 'mmattn':
        import mmattn

        return osp.join(osp.dirname(osp.abspath(mmattn.__file__)), '.mim', 'configs', rel)
    from mmengine.config.utils import _get_external_cfg_base_path, _get_package_and_cfg_path
    from mmengine.utils import get_installed_path

    try:
        name, rel = _get_package_and_cfg_path(path)
        return _get_external_cfg_base_path(get_installed_path(name), rel)
    except Exception as err:  # noqa: BLE001  (one line for the user instead of mmengine's)
        raise UserInputError(f'config {path}: {err}') from None


def load_config(path: str, options: Optional[dict] = None) -> Config:
    """Load ``path`` (a file, or ``package::family/config.py``) and merge checked
    ``--cfg-options``."""
    path = resolve_config_path(path)
    if not osp.isfile(path):
        raise UserInputError(
            f'config file {path} does not exist; pass the path of a .py config under configs/'
        )
    cfg = Config.fromfile(path)
    if options:
        check_cfg_options(cfg, options)
        cfg.merge_from_dict(options)
    for note in fit_dataloader_workers(cfg):
        print(f'note: {note}', file=sys.stderr)
    return cfg


def load_run_config(args, checkpoint: Optional[str] = None) -> Config:
    """The shared start of ``tools/train.py`` and ``tools/test.py``: the safe checkpoint loader
    (every checkpoint MMEngine loads goes through the ``weights_only`` unpickler), the config
    with ``--cfg-options``, the launcher, the work dir (``--work-dir``, the config's, or
    ``./work_dirs/<config name>``) and, for testing, the ``checkpoint``: it must exist, becomes
    ``load_from``, and the backbone's ``Pretrained`` init is dropped (it holds every weight).
    """
    from .checkpoint import install_safe_checkpoint_loader

    # mmengine looks up mmdet::/mmseg:: base configs through pkg_resources, which warns on import.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    install_safe_checkpoint_loader()
    cfg = load_config(args.config, args.cfg_options)
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise UserInputError(
            f'checkpoint {checkpoint} does not exist; pass the .pth written by tools/train.py'
        )
    prepare_launcher(cfg, args.launcher)
    if checkpoint is not None:
        cfg.load_from = checkpoint
        drop_pretrained_init(cfg.model)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def fit_dataloader_workers(cfg: Config) -> list:
    """Turn ``persistent_workers`` off where ``num_workers`` is 0; return one note each.

    PyTorch's DataLoader refuses ``persistent_workers=True`` without worker processes, so
    ``--cfg-options train_dataloader.num_workers=0`` (the usual way to debug a pipeline in one
    process) would otherwise fail inside PyTorch on a recipe that keeps its workers alive.
    """
    notes = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if (
            isinstance(loader, dict)
            and loader.get('num_workers', 1) == 0
            and loader.get('persistent_workers')
        ):
            loader['persistent_workers'] = False
            notes.append(
                f'{split}_dataloader.num_workers=0: set persistent_workers=False '
                f'(it needs worker processes)'
            )
    return notes


def drop_pretrained_init(model_cfg) -> list:
    """Remove every ``init_cfg`` of type ``Pretrained`` from a model config; return their paths.

    Testing loads the whole trained checkpoint, so the ImageNet weights a backbone starts
    training from are neither needed nor wanted (MMDetection's and MMSegmentation's test tools
    never initialise weights either); without this, a trained model could not be tested on a
    machine that lacks the backbone's ``pretrained/`` file.
    """
    dropped = []

    def is_pretrained(init) -> bool:
        return isinstance(init, dict) and str(init.get('type', '')).endswith('Pretrained')

    def walk(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            if is_pretrained(init):
                dropped.append(init.get('checkpoint'))
                node['init_cfg'] = None
            elif isinstance(init, (list, tuple)) and any(is_pretrained(i) for i in init):
                dropped.extend(i.get('checkpoint') for i in init if is_pretrained(i))
                node['init_cfg'] = [i for i in init if not is_pretrained(i)] or None
            if node.get('pretrained') is not None and isinstance(node.get('pretrained'), str):
                dropped.append(node['pretrained'])
                node['pretrained'] = None
            for key, value in node.items():
                if key != 'init_cfg':
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)

    walk(model_cfg)
    return dropped


def _iter_datasets(cfg: dict) -> Iterator[dict]:
    """Yield the leaf dataset configs of (possibly wrapped) dataset configs."""
    if not isinstance(cfg, dict):
        return
    if 'dataset' in cfg:
        yield from _iter_datasets(cfg['dataset'])
    elif 'datasets' in cfg:
        for sub in cfg['datasets']:
            yield from _iter_datasets(sub)
    else:
        yield cfg


def iter_split_datasets(cfg: Config, splits) -> Iterator[Tuple[str, dict]]:
    """Yield ``(split, leaf dataset config)`` for the dataloaders of ``splits`` in ``cfg``."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            for ds in _iter_datasets(loader.get('dataset', {})):
                yield split, ds


def check_coco_json(path: str) -> None:
    """Fail clearly on an annotation file that is not valid COCO instances JSON."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise UserInputError(
            f'annotation file {path} is not valid JSON (line {err.lineno}, '
            f'column {err.colno}: {err.msg}); regenerate or fix it'
        ) from None
    if not isinstance(data, dict):
        raise UserInputError(
            f'annotation file {path} must hold a JSON object with "images", '
            f'"annotations" and "categories", not a {type(data).__name__}'
        )
    missing = [k for k in ('images', 'annotations', 'categories') if k not in data]
    if missing:
        raise UserInputError(
            f'annotation file {path} lacks the COCO key(s) {missing}; it must '
            f'hold "images", "annotations" and "categories" lists'
        )
    if not data['images']:
        raise UserInputError(
            f'annotation file {path} lists no images; a dataset needs at least one image'
        )


def check_dataset_paths(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """Check that every dataset a run will build points at existing files."""
    for split, ds in iter_split_datasets(cfg, splits):
        root = ds.get('data_root', '') or ''
        if root and not osp.isdir(root):
            raise UserInputError(
                f'{split} dataset folder {root} does not exist; set data_root in the config '
                f'(or --cfg-options {split}_dataloader.dataset.data_root=...), or run '
                f'`make data` for the bundled dataset'
            )
        ann = ds.get('ann_file', '') or ''
        if ann:
            ann_path = ann if osp.isabs(ann) else osp.join(root, ann)
            if not osp.isfile(ann_path):
                raise UserInputError(
                    f'{split} annotation file {ann_path} does not exist; '
                    f'check data_root and ann_file'
                )
            if ann_path.endswith('.json'):
                check_coco_json(ann_path)
        prefix = ds.get('data_prefix', {}) or {}
        for key in ('img', 'img_path', 'seg_map_path'):
            sub = prefix.get(key)
            if sub:
                path = sub if osp.isabs(sub) else osp.join(root, sub)
                if not osp.isdir(path):
                    raise UserInputError(
                        f'{split} dataset folder {path} ({key}) does not exist; check '
                        f'data_root and data_prefix'
                    )


#: Exit status of a user mistake found before training (one ``error:`` line).
EXIT_USER_ERROR = 2
#: Exit status of a run stopped by a non-finite loss.
EXIT_NONFINITE_LOSS = 3
#: Exit status of a run stopped because a file could not be written (disk full, quota, EIO).
EXIT_WRITE_FAILED = 4
#: The errnos of a storage that cannot take more data.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS)


class NonFiniteLossError(RuntimeError):
    """Training stopped on a non-finite loss (the weights of that step were not updated)."""


def _one_line(err: BaseException) -> str:
    """The message of ``err`` as one line.

    An exception raised in a DataLoader worker reaches the main process re-raised with the
    worker's traceback in its message; its last line is the original message.
    """
    msg = str(err)
    if 'Original Traceback' in msg:
        last = [line for line in msg.splitlines() if line.strip()][-1]
        msg = last.split(': ', 1)[1] if ': ' in last else last
    return ' '.join(msg.split())


def _written_file(err: OSError) -> str:
    """The file a failed write was for: the error's own file name, else the innermost open
    file (or logging file handler) in the traceback (``f.write`` errors carry no name)."""
    import io
    import logging

    if err.filename:
        return str(err.filename)
    tb, found = err.__traceback__, ''
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, io.IOBase) and isinstance(getattr(value, 'name', None), str):
                found = value.name
            elif isinstance(value, logging.FileHandler):  # code that writes to its stream
                found = value.baseFilename
        tb = tb.tb_next
    return found or 'a file of the run'


def _failed_sample(err: BaseException) -> Optional[str]:
    """``'sample N (files)'`` if ``err`` was raised while a dataset loaded a sample, else None.

    The pre-flight check reads the data before training; a file that breaks afterwards (it is
    replaced or truncated while the run goes on) fails inside the dataset's pipeline, whose
    ``prepare_data(idx)`` frame tells which sample it was.
    """
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == 'prepare_data' and 'idx' in frame.f_locals:
            ds, idx = frame.f_locals.get('self'), frame.f_locals['idx']
            try:
                info = ds.get_data_info(idx)
                files = [info[k] for k in ('img_path', 'seg_map_path') if info.get(k)]
            except Exception:
                files = []
            return f'sample {idx} of {type(ds).__name__}' + (
                f' ({", ".join(files)})' if files else ''
            )
        tb = tb.tb_next
    if 'in DataLoader worker process' in str(err) and 'prepare_data' in str(err):
        return 'a sample (in a DataLoader worker)'
    return None


@contextmanager
def user_errors():
    """Print user mistakes and run-stopping faults as one ``error:`` line; keep tracebacks
    for real bugs.

    Exit status: 2 for a user mistake (also a sample that breaks after the pre-flight check),
    3 for a non-finite loss (:class:`NonFiniteLossError`), 4 for a file
    that could not be written (disk full, quota, I/O error). Set ``MMATTN_DEBUG=1`` to see the
    traceback too.
    """
    import errno as errno_names

    try:
        yield
    except Exception as err:
        if os.environ.get('MMATTN_DEBUG'):
            raise
        sample = None
        if isinstance(err, (UserInputError, FileNotFoundError, UnsafeCheckpointError)):
            line, code = _one_line(err), EXIT_USER_ERROR
        elif isinstance(err, NonFiniteLossError):
            line, code = _one_line(err), EXIT_NONFINITE_LOSS
        elif isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            name = errno_names.errorcode.get(err.errno, str(err.errno))
            line = (
                f'cannot write {_written_file(err)}: {err.strerror} (errno {err.errno}, '
                f'{name}); the previous checkpoint and last_checkpoint are intact: free '
                f'space (or fix the storage), then rerun with --resume'
            )
            code = EXIT_WRITE_FAILED
        elif isinstance(err, KeyError) and err.args and 'registry' in str(err.args[0]):
            line, code = str(err.args[0]).splitlines()[0], EXIT_USER_ERROR
        elif (sample := _failed_sample(err)) is not None:
            line = (
                f'cannot load {sample}: {type(err).__name__}: {_one_line(err)}; the data '
                f'changed or broke after the pre-flight check: restore the file (or remove '
                f'it from the dataset) and rerun (a training run continues with --resume)'
            )
            code = EXIT_USER_ERROR
        else:
            raise
        print(f'error: {line}', file=sys.stderr)
        sys.exit(code)


def prepare_launcher(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch`` work on machines without CUDA.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device``, which a CPU-only torch lacks, and
    its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU
    modules. Without CUDA we start the process group with gloo ourselves (MMEngine then skips
    its own init) and wrap the model in DDP without device ids.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise UserInputError(
            f'--launcher {launcher} needs CUDA on this machine; on CPU use '
            f'--launcher pytorch (tools/dist_train.sh), which runs on gloo'
        )
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        # An explicit None: MMEngine would otherwise fill device_ids=[LOCAL_RANK].
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )


def finish_launcher(runner=None) -> None:
    """Leave the process group cleanly once a distributed run has finished.

    Without this, the first rank to return tears down the rendezvous store while the others
    still run gloo's threads, and a rank can die with ``terminate called without an active
    exception`` (SIGABRT) after a run that completed, so ``torchrun`` reports a failure. The
    barrier lets every rank finish its last collective before any of them leaves. The DDP
    wrapper's reducer holds a reference to the process group, so the group would otherwise
    outlive ``destroy_process_group`` and be torn down during interpreter exit, racing the
    static destructors; releasing the runner's model first makes ``destroy_process_group``
    join gloo's threads while the process is whole.
    """
    import gc

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    if runner is not None:
        runner.model = None  # drops the DDP wrapper and its reducer
    gc.collect()
    dist.destroy_process_group()
