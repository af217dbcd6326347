"""Mixed precision on machines without CUDA.

MMEngine's ``AmpOptimWrapper`` refuses to run without a GPU/NPU/MLU. On CPU, bf16 autocast
needs no loss scaling (bf16 has fp32's exponent range), so this wrapper only adds the autocast
context; ``tools/train.py --amp`` picks it when CUDA is absent.

mmcv's compiled CPU ops (NMS, RoIAlign) have no bf16 kernels, so a detector cannot run wholly
under CPU autocast: RPN's NMS fails with "expected scalar type Float but found BFloat16".
``autocast_modules`` therefore limits autocast to named sub-modules (for detectors: the backbone
and the neck, where the attention and almost all the FLOPs are) and hands their outputs to the
rest of the model in fp32.
"""
from contextlib import ExitStack, contextmanager
from typing import Optional, Sequence

import torch
from mmengine.optim import OptimWrapper

from mmattn.registry import OPTIM_WRAPPERS


def _to_float32(output):
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, (list, tuple)):
        return type(output)(_to_float32(o) for o in output)
    if isinstance(output, dict):
        return {k: _to_float32(v) for k, v in output.items()}
    return output


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """OptimWrapper that runs forward passes under CPU autocast.

    Args:
        dtype (str | torch.dtype): Autocast dtype. Defaults to ``'bfloat16'``.
        autocast_modules (Sequence[str], optional): Names of the model's sub-modules (e.g.
            ``('backbone', 'neck')``) to run under autocast; their outputs are cast back to fp32.
            None runs the whole forward under autocast. Names the model lacks are skipped, but
            at least one must exist. Defaults to None.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', autocast_modules: Optional[Sequence[str]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'CPUAmpOptimWrapper dtype must be bfloat16 or float16, got {dtype}')
        if isinstance(autocast_modules, str):
            autocast_modules = (autocast_modules, )
        if autocast_modules is not None and not (
                isinstance(autocast_modules, (list, tuple))
                and all(isinstance(name, str) for name in autocast_modules)):
            raise TypeError(f'CPUAmpOptimWrapper autocast_modules must be sub-module names '
                            f"(e.g. ('backbone', 'neck')) or None, got {autocast_modules!r}")
        self.autocast_modules = None if autocast_modules is None else tuple(autocast_modules)

    def _scoped_modules(self, model):
        model = getattr(model, 'module', model)  # DDP wrapper
        found = [getattr(model, name) for name in self.autocast_modules
                 if isinstance(getattr(model, name, None), torch.nn.Module)]
        if not found:
            raise ValueError(f'CPUAmpOptimWrapper: the model ({type(model).__name__}) has none of '
                             f'autocast_modules={list(self.autocast_modules)}; name its '
                             f'sub-modules, or set autocast_modules=None for the whole model')
        return found

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model):
            if self.autocast_modules is None:
                with torch.autocast('cpu', dtype=self.cast_dtype):
                    yield
                return
            with ExitStack() as stack:
                for module in self._scoped_modules(model):
                    self._autocast_module(module, stack)
                yield

    def _autocast_module(self, module, stack):
        """Run ``module``'s forward under autocast (hooks live as long as ``stack``)."""
        active = []

        def enter(mod, args):
            ctx = torch.autocast('cpu', dtype=self.cast_dtype)
            ctx.__enter__()
            active.append(ctx)

        def leave(mod, args, output):
            active.pop().__exit__(None, None, None)
            return _to_float32(output)

        def unwind():
            # a forward that raised never reached its post-hook: restore the autocast state
            while active:
                active.pop().__exit__(None, None, None)

        stack.callback(unwind)
        stack.callback(module.register_forward_hook(leave).remove)
        stack.callback(module.register_forward_pre_hook(enter).remove)
