"""Mixed precision on machines without CUDA.

MMEngine's ``AmpOptimWrapper`` refuses to run without a GPU/NPU/MLU. On CPU, bf16 autocast
needs no loss scaling (bf16 has fp32's exponent range), so this wrapper only adds the autocast
context; ``tools/train.py --amp`` picks it when CUDA is absent.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmattn.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """OptimWrapper that runs forward passes under CPU autocast.

    Args:
        dtype (str | torch.dtype): Autocast dtype. Defaults to ``'bfloat16'``.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'CPUAmpOptimWrapper dtype must be bfloat16 or float16, got {dtype}')

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
