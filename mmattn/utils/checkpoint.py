"""Safe checkpoint loading and atomic saving.

A ``.pth`` file is a pickle: unpickling an untrusted one can run arbitrary code. torch >= 2.6
loads with ``weights_only=True`` by default, which refuses MMEngine's own checkpoints (its
message hub stores ``HistoryBuffer`` objects holding numpy arrays), so resume breaks. The fix
here is *not* ``weights_only=False``: we keep the restricted unpickler and allow exactly the
extra types MMEngine writes. Anything else in a pickle is rejected with a clear error.
"""

import os.path as osp
from typing import Any, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from .atomic import atomic_write


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint wants to unpickle a type that is not on the allow-list."""


def _numpy_globals() -> list:
    """Numpy objects that pickled arrays and scalars reference (names differ across numpy 1/2)."""
    allowed = [np.ndarray, np.dtype]
    for mod_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            mod = __import__(mod_name, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        # Pickles name the module they were written with; register both spellings.
        allowed.append((mod._reconstruct, f'{mod_name}._reconstruct'))
        allowed.append((mod.scalar, f'{mod_name}.scalar'))
    # dtype classes (numpy >= 1.25 pickles dtypes as e.g. numpy.dtypes.Float64DType)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            obj = getattr(dtypes, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                allowed.append(obj)
    return allowed


# HistoryBuffer fills its statistics registry lazily (in __init__), so name the built-in ones.
_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` that only resolves HistoryBuffer statistics methods.

    MMEngine's message hub pickles ``HistoryBuffer`` objects whose statistics are bound methods,
    which pickle as ``builtins.getattr(buffer, 'mean')``. Allowing the real ``getattr`` would
    let a pickle walk from any allowed object to ``__globals__`` and run code, so this stand-in
    is registered under that name instead and refuses everything else.
    """
    # The pickled dict of statistics holds HistoryBuffer's functions: getattr(HistoryBuffer, 'min').
    owner_ok = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    if (
        owner_ok
        and isinstance(name, str)
        and not name.startswith('_')
        and (name in _BUILTIN_STATISTICS or name in HistoryBuffer._statistics_methods)
    ):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'checkpoint asks for attribute {name!r} of a {type(obj).__name__}; only HistoryBuffer '
        f'statistics are allowed'
    )


#: The types, beyond tensors and builtin containers, that MMEngine itself puts in checkpoints.
SAFE_GLOBALS = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


def safe_load(filename: str, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with torch's restricted unpickler plus MMEngine's own types.

    Args:
        filename (str): Path of a local checkpoint (``.pth``) or ``.safetensors`` file.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The pickle references a type outside the allow-list.
        RuntimeError: The file is truncated or not a checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist; check the path')
    if filename.endswith('.safetensors'):
        from safetensors.torch import load_file

        device = map_location if isinstance(map_location, str) else 'cpu'
        return {'state_dict': load_file(filename, device=device)}
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f'refusing to load {filename}: {err}') from None
    except Exception as err:  # torch raises UnpicklingError / RuntimeError / EOFError
        msg = str(err)
        if 'Weights only load failed' in msg or 'Unsupported global' in msg:
            first = next(
                (
                    line.strip()
                    for line in msg.splitlines()
                    if 'Unsupported global' in line or 'GLOBAL' in line
                ),
                msg.splitlines()[0],
            )
            raise UnsafeCheckpointError(
                f'refusing to load {filename}: it contains a pickled object outside the '
                f'allow-list of tensors, containers and MMEngine types ({first}). Only load '
                f'checkpoints you trust; convert foreign ones with tools/model_converters.'
            ) from None
        reason = msg.splitlines()[0] if msg else type(err).__name__
        raise RuntimeError(
            f'cannot read checkpoint {filename}: {reason}. The file is truncated or not a '
            f'PyTorch checkpoint; re-save or re-download it.'
        ) from None


def save_atomic(obj: Any, filename: str) -> None:
    """Save ``obj`` with :func:`torch.save` so that ``filename`` is either complete or absent.

    A ``.safetensors`` name stores a flat dict of tensors (``obj['state_dict']`` when given a
    checkpoint dict). See :func:`mmattn.utils.atomic.atomic_write`.
    """
    if filename.endswith('.safetensors'):
        from safetensors.torch import save

        tensors = obj.get('state_dict', obj) if isinstance(obj, dict) else obj
        atomic_write(filename, save({k: v.contiguous() for k, v in tensors.items()}))
    else:
        atomic_write(filename, lambda f: torch.save(obj, f))


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole checkpoint file (not truncated, not torn).

    ``torch.save`` writes a zip archive with a CRC per record; a truncated file has no central
    directory and a torn one fails the CRC check. Nothing is unpickled.
    """
    import zipfile

    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    if path.endswith('.safetensors'):
        return True
    try:
        if not zipfile.is_zipfile(path):
            # Legacy (pre-1.6) torch format: no integrity data; accept a non-empty file.
            with open(path, 'rb') as f:
                return f.read(2) == b'\x80\x02'
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError):
        return False


def _load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    return safe_load(filename, map_location)


def install_safe_checkpoint_loader() -> None:
    """Route MMEngine's local-file checkpoint loading through :func:`safe_load`.

    MMEngine dispatches loads by path prefix; the empty prefix is the local-file loader used by
    resume, ``load_from`` and ``init_cfg=dict(type='Pretrained')``. Re-registering it is
    idempotent. Importing mmattn does *not* call this: ``tools/train.py`` and ``tools/test.py``
    do, and configs run by MMDetection's or MMSegmentation's own tools opt in with
    ``custom_imports = dict(imports=['mmattn.models', 'mmattn.safe_loading'])``.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_from_local)


def write_json_atomic(obj: Any, filename: str) -> None:
    """Write ``obj`` as JSON so that ``filename`` is either complete or absent."""
    import json

    atomic_write(filename, json.dumps(obj, indent=2))
