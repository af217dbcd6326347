"""A small cache for tensors that depend on sizes alone (interpolation matrices, shifted-window
masks), so that a block does not rebuild them on every forward.

Why: building such a constant takes a dozen or more tiny ops, and on a GPU each op is a kernel
launch; at batch 1 the backbones are launch-bound there (docs/benchmark.md), so ops that
compute nothing new cost real time.

What is kept: only tensors that are functions of their key (sizes, dtype, device), never of
parameters, so nothing needs invalidating when the model trains. Each entry is built outside
``inference_mode`` (an inference tensor could not be saved for backward by a later training
step) and without autograd. Under ``torch.compile`` nothing is cached: the tensor is built inside
the graph (whose kernels are fused anyway), and Dynamo never sees the dict. The cache is cleared
when full, and tensors larger than ``max_bytes`` are not kept (at detection sizes, which change
from image to image, the build is small next to the work it serves).
"""

from typing import Callable, Dict, Hashable, Optional

import torch

__all__ = ['SizeKeyedCache']


class SizeKeyedCache:
    """``get(key, build)``: ``build()``'s tensor, built once per key. Callers must not write to
    the tensors it returns.

    Args:
        max_entries (int): Entries kept; the cache is cleared when a new one would exceed it.
        max_bytes (int, optional): Larger tensors are returned but not kept. Defaults to None
            (no limit).
    """

    def __init__(self, max_entries: int, max_bytes: Optional[int] = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._store: Dict[Hashable, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: Hashable, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return build()
        tensor = self._store.get(key)
        if tensor is None:
            with torch.inference_mode(False), torch.no_grad():
                tensor = build()
            if self.max_bytes is None or tensor.numel() * tensor.element_size() <= self.max_bytes:
                if len(self._store) >= self.max_entries:
                    self._store.clear()
                self._store[key] = tensor
        return tensor
