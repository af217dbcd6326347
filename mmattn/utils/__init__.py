from .checkpoint import (
                         UnsafeCheckpointError,
                         install_safe_checkpoint_loader,
                         safe_load,
                         save_atomic,
                         write_json_atomic,
)

__all__ = [
    'UnsafeCheckpointError', 'install_safe_checkpoint_loader', 'safe_load', 'save_atomic',
    'write_json_atomic'
]
