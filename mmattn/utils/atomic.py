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


def atomic_write(
    filepath: str, data: Union[bytes, str, Callable[[IO[bytes]], None]], encoding: str = 'utf-8'
) -> None:
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
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise _named(err, filepath) from err
    f = None
    try:
        with os.fdopen(fd, 'wb') as raw:
            f = _WriteRecorder(raw)
            if callable(data):
                data(f)
            else:
                f.write(data.encode(encoding) if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException as err:
        try:
            os.remove(tmp)
        except OSError:
            pass  # never written, already renamed, or the disk refuses even this
        # A full disk shows up as OSError without a file name, or (inside torch.save) as a
        # RuntimeError that hides it: name the destination so the user knows what failed.
        cause = err if isinstance(err, OSError) else getattr(f, 'error', None)
        if isinstance(cause, OSError):
            raise _named(cause, filepath) from err
        raise
    _fsync_dir(folder)


class _WriteRecorder:
    """A binary file that remembers the ``OSError`` of a failed write (torch re-raises it as a
    RuntimeError that loses the errno)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.error = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def _named(err: OSError, filepath: str) -> OSError:
    """``err`` with ``filepath`` as its file name (same class and errno)."""
    if err.filename == filepath or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), filepath)


def remove_stale_tmp_files(folder: str) -> List[str]:
    """Delete temporary files left by a write that was killed; return their paths."""
    stale = glob.glob(osp.join(glob.escape(folder), f'{TMP_PREFIX}*{TMP_SUFFIX}'))
    for path in stale:
        try:
            os.remove(path)
        except OSError:
            pass
    return stale
