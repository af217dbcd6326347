"""Inference throughput and peak memory, on CPU or CUDA.

Timing: ``warmup`` untimed runs, then ``repeat`` timed runs (CUDA synchronised around each);
we report the median and the spread (inter-quartile range, min, max) since single runs on a
shared machine are noisy. Peak memory is measured in a separate, untimed run: on CUDA the
``max_memory_allocated`` increase over what was allocated before the run; on CPU the high-water
mark of the allocations recorded by the PyTorch profiler (``profile_memory=True``), i.e. the
tensors alive at once during the run (model weights excluded, they exist before it).
"""
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_runs(fn: Callable[[], object], repeat: int = 10, warmup: int = 2,
              device: Optional[torch.device] = None, clock: str = 'wall') -> List[float]:
    """Seconds of each of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls.

    ``clock='process'`` measures the CPU time of this process instead of wall time: on a CPU
    shared with other jobs it excludes the time spent waiting for a core (with T threads it is
    up to T times the wall time of a parallel region).
    """
    device = device or torch.device('cpu')
    if clock not in ('wall', 'process'):
        raise ValueError(f"clock must be 'wall' or 'process', got {clock!r}")
    now = time.perf_counter if clock == 'wall' else time.process_time
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        _sync(device)
        start = now()
        fn()
        _sync(device)
        times.append(now() - start)
    return times


def peak_memory(fn: Callable[[], object], device: Optional[torch.device] = None) -> int:
    """Bytes allocated at once during one call of ``fn``, beyond what existed before it."""
    device = device or torch.device('cpu')
    if device.type == 'cuda':
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'
              and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return int(peak)


def summarize(times: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles, min and max of ``times`` (seconds)."""
    ordered = sorted(times)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return dict(median=statistics.median(ordered), q1=q1, q3=q3, min=ordered[0],
                max=ordered[-1], runs=len(ordered))


def benchmark_callable(fn: Callable[[], object], batch_size: int, repeat: int = 10,
                       warmup: int = 2, device: Optional[torch.device] = None,
                       measure_memory: bool = True) -> dict:
    """Time ``fn`` (one batch of ``batch_size`` images) and measure its peak memory.

    Returns:
        dict: ``time`` (summary in seconds per batch), ``fps_median`` (images/s at the median),
        ``fps_min``/``fps_max`` (at the slowest/fastest run) and ``peak_mem_bytes``.
    """
    times = time_runs(fn, repeat, warmup, device)
    summary = summarize(times)
    out = dict(time=summary, fps_median=batch_size / summary['median'],
               fps_min=batch_size / summary['max'], fps_max=batch_size / summary['min'],
               batch_size=batch_size)
    out['peak_mem_bytes'] = peak_memory(fn, device) if measure_memory else None
    return out


def model_runner(model: nn.Module, task: str, shape, batch_size: int = 1,
                 backbone_only: bool = False, mode: str = 'predict',
                 device: Optional[torch.device] = None) -> Callable[[], object]:
    """A no-grad closure running one inference batch of random images through ``model``.

    ``mode='predict'`` runs the full inference (with post-processing: NMS, mask pasting,
    segmentation resizing); ``'tensor'`` the raw network outputs.
    """
    device = device or torch.device('cpu')
    model.to(device)
    model.eval()  # NOTE: some backbones' train() returns None, so don't chain
    img = torch.randn(batch_size, 3, *shape, device=device)
    if backbone_only:
        samples = None
    else:
        h, w = shape
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
        if task == 'det':
            from mmdet.structures import DetDataSample
            samples = [DetDataSample(metainfo=meta) for _ in range(batch_size)]
        else:
            from mmseg.structures import SegDataSample
            samples = [SegDataSample(metainfo=dict(meta, padding_size=[0, 0, 0, 0]))
                       for _ in range(batch_size)]

    @torch.no_grad()
    def run():
        if backbone_only:
            return model(img)
        return model(img, samples, mode=mode)

    return run
