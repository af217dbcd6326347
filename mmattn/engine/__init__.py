from .optim_wrapper import CPUAmpOptimWrapper, device_has_fp16_amp, fit_optim_wrapper_to_device

__all__ = ['CPUAmpOptimWrapper', 'device_has_fp16_amp', 'fit_optim_wrapper_to_device']
