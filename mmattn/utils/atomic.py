"""The one atomic file writer: a file is either its old version or the complete new one.

Everything mmattn writes that a crash must not leave half-written (checkpoints, the
``last_checkpoint`` pointer, converted weights, metrics, predictions) goes through
:func:`atomic_write`: the data goes to a hidden temporary file in the destination folder, is
flushed and ``fsync``-ed, renamed over the destination (atomic on POSIX), and the folder entry
is ``fsync``-ed too. A write that is killed leaves only a temporary file, named
``.tmp-*.part``, which :func:`remove_stale_tmp_files` clears on the next start.

The temporary file is created with mode ``0o666`` and the kernel applies the process umask, so
the result has the mode a plain ``open()`` would give, without reading or changing the umask.
"""
import glob
import os
import os.path as osp
import uuid
from typing import IO, Callable, List, Union

#: Temporary files are hidden and end in ``.part``.
TMP_PREFIX = '.tmp-'
TMP_SUFFIX = '.part'


def _fsync_dir(folder: str) -> None:
    """Persist a rename: the directory entry itself must reach the disk."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(filepath: str, data: Union[bytes, str, Callable[[IO[bytes]], None]],
                 encoding: str = 'utf-8') -> None:
    """Write ``filepath`` atomically.

    Args:
        filepath (str): Destination; its folder is created if needed.
        data (bytes | str | callable): The content, or a function that writes it to the binary
            file object it is given (e.g. ``lambda f: torch.save(obj, f)``).
        encoding (str): Encoding of ``str`` data. Defaults to ``'utf-8'``.
    """
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'{TMP_PREFIX}{uuid.uuid4().hex}{TMP_SUFFIX}')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode(encoding) if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def remove_stale_tmp_files(folder: str) -> List[str]:
    """Delete temporary files left by a write that was killed; return their paths."""
    stale = glob.glob(osp.join(glob.escape(folder), f'{TMP_PREFIX}*{TMP_SUFFIX}'))
    for path in stale:
        try:
            os.remove(path)
        except OSError:
            pass
    return stale
