from .atomic import atomic_write, remove_stale_tmp_files
from .checkpoint import (
    UnsafeCheckpointError,
    install_safe_checkpoint_loader,
    is_complete_checkpoint,
    safe_load,
    save_atomic,
    write_json_atomic,
)

__all__ = [
    'UnsafeCheckpointError',
    'atomic_write',
    'install_safe_checkpoint_loader',
    'is_complete_checkpoint',
    'remove_stale_tmp_files',
    'safe_load',
    'save_atomic',
    'write_json_atomic',
]
