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

    def __init__(
        self, dtype='bfloat16', autocast_modules: Optional[Sequence[str]] = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'CPUAmpOptimWrapper dtype must be bfloat16 or float16, got {dtype}')
        if isinstance(autocast_modules, str):
            autocast_modules = (autocast_modules,)
        if autocast_modules is not None and not (
            isinstance(autocast_modules, (list, tuple))
            and all(isinstance(name, str) for name in autocast_modules)
        ):
            raise TypeError(
                f'CPUAmpOptimWrapper autocast_modules must be sub-module names '
                f"(e.g. ('backbone', 'neck')) or None, got {autocast_modules!r}"
            )
        self.autocast_modules = None if autocast_modules is None else tuple(autocast_modules)

    def _scoped_modules(self, model):
        model = getattr(model, 'module', model)  # DDP wrapper
        found = [
            getattr(model, name)
            for name in self.autocast_modules
            if isinstance(getattr(model, name, None), torch.nn.Module)
        ]
        if not found:
            raise ValueError(
                f'CPUAmpOptimWrapper: the model ({type(model).__name__}) has none of '
                f'autocast_modules={list(self.autocast_modules)}; name its '
                f'sub-modules, or set autocast_modules=None for the whole model'
            )
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


#: Keys only MMEngine's ``AmpOptimWrapper`` takes; ``OptimWrapper`` refuses them.
_FP16_AMP_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def device_has_fp16_amp() -> bool:
    """Whether MMEngine's ``AmpOptimWrapper`` can run here (CUDA, NPU, MLU or MUSA)."""
    import mmengine.device as dev
    import torch

    checks = [torch.cuda.is_available()] + [
        getattr(dev, name)()
        for name in ('is_npu_available', 'is_mlu_available', 'is_musa_available')
        if hasattr(dev, name)
    ]
    return any(checks)


def fit_optim_wrapper_to_device(
    cfg, amp: bool = False, fp16_amp_available: Optional[bool] = None
) -> Optional[str]:
    """Make ``cfg.optim_wrapper`` runnable on this machine; return a one-line note or None.

    Recipes copy the official ``AmpOptimWrapper`` (fp16 with loss scaling), which MMEngine
    refuses without CUDA. Researchers debug recipes on laptops and CPU nodes, so:

    * fp16 AMP unavailable, recipe asks for it: train in fp32 with ``OptimWrapper``, or, with
      ``amp=True`` (``--amp``), under CPU bf16 autocast (:class:`CPUAmpOptimWrapper`);
    * ``amp=True`` on a plain ``OptimWrapper``: ``AmpOptimWrapper`` (dynamic loss scale) where
      fp16 AMP runs, :class:`CPUAmpOptimWrapper` elsewhere;
    * an ``OptimWrapper`` left with AMP-only keys (``--cfg-options optim_wrapper.type=
      OptimWrapper`` on an AMP recipe): the keys are dropped.

    A detector (``default_scope='mmdet'``) autocasts only its backbone and neck on CPU: mmcv's
    CPU NMS / RoIAlign have no bf16 kernels.

    Args:
        cfg (Config): The full config; ``cfg.optim_wrapper`` is edited in place.
        amp (bool): Mixed precision was asked for (``--amp``). Defaults to False.
        fp16_amp_available (bool, optional): Override the device probe (tests).
            Defaults to None (probe with :func:`device_has_fp16_amp`).
    """
    wrapper = cfg.get('optim_wrapper')
    if not wrapper:
        return None
    fp16 = device_has_fp16_amp() if fp16_amp_available is None else fp16_amp_available
    kind = str(wrapper.get('type', 'OptimWrapper')).split('.')[-1]
    if kind == 'AmpOptimWrapper':
        return None if fp16 else _replace_fp16_amp(cfg, wrapper, amp)
    if kind == 'OptimWrapper':
        return _fit_plain(cfg, wrapper, amp, fp16)
    if kind == 'CPUAmpOptimWrapper' and amp:
        return '--amp: the config already uses mmattn.CPUAmpOptimWrapper'
    if amp:
        return f'--amp: optim_wrapper type {kind} is kept as the config sets it'
    return None


def _drop_fp16_amp_keys(wrapper) -> list:
    found = [key for key in _FP16_AMP_KEYS if key in wrapper]
    for key in found:
        wrapper.pop(key)
    return found


def _use_cpu_amp(cfg, wrapper) -> None:
    _drop_fp16_amp_keys(wrapper)
    wrapper['type'] = 'mmattn.CPUAmpOptimWrapper'
    wrapper['dtype'] = 'bfloat16'
    if cfg.get('default_scope') == 'mmdet':
        wrapper['autocast_modules'] = ('backbone', 'neck')


def _replace_fp16_amp(cfg, wrapper, amp: bool) -> str:
    """An ``AmpOptimWrapper`` recipe where fp16 AMP cannot run: fp32, or CPU bf16 with --amp."""
    if amp:
        _use_cpu_amp(cfg, wrapper)
        return (
            'the recipe trains with fp16 AMP (AmpOptimWrapper), which needs CUDA; '
            '--amp: using bf16 autocast on the CPU instead (mmattn.CPUAmpOptimWrapper)'
        )
    _drop_fp16_amp_keys(wrapper)
    wrapper['type'] = 'OptimWrapper'
    return (
        'the recipe trains with fp16 AMP (AmpOptimWrapper), which needs CUDA; training '
        'in fp32 on this machine instead (pass --amp for bf16 autocast on the CPU)'
    )


def _fit_plain(cfg, wrapper, amp: bool, fp16: bool) -> Optional[str]:
    """A plain ``OptimWrapper``: AMP-only keys dropped; --amp picks the device's AMP."""
    leftover = _drop_fp16_amp_keys(wrapper)
    if amp:
        if fp16:
            wrapper['type'] = 'AmpOptimWrapper'
            wrapper['loss_scale'] = 'dynamic'
            return '--amp: fp16 autocast with dynamic loss scaling (AmpOptimWrapper)'
        _use_cpu_amp(cfg, wrapper)
        return '--amp: bf16 autocast on the CPU (mmattn.CPUAmpOptimWrapper)'
    if leftover:
        return (
            f'optim_wrapper is a plain OptimWrapper: dropped the AMP-only key(s) '
            f'{", ".join(leftover)}'
        )
    return None
