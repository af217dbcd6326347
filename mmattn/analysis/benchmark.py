"""Inference and training-step throughput and peak memory, on CPU or CUDA, and A/B comparisons.

Timing: ``warmup`` untimed runs, then ``repeat`` timed runs (CUDA synchronised around each);
we report the median and the spread (inter-quartile range, min, max) since single runs on a
shared machine are noisy. Peak memory is measured in a separate, untimed run: on CUDA the
``max_memory_allocated`` increase over what was allocated before the run; on CPU the high-water
mark of the allocations recorded by the PyTorch profiler (``profile_memory=True``), i.e. the
tensors alive at once during the run (model weights excluded, they exist before it).

A comparison (:func:`compare_callables`) times two runs (eager vs compiled, or two configs) in
alternating rounds, A then B, then B then A, ..., so that a change of load on a shared machine
hits both sides alike; the speed-up is reported per round and from the best round medians.
"""

import copy
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_runs(
    fn: Callable[[], object],
    repeat: int = 10,
    warmup: int = 2,
    device: Optional[torch.device] = None,
    clock: str = 'wall',
) -> List[float]:
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
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == '[memory]' and e.device_type() == torch.autograd.DeviceType.CPU
    ]
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
    return dict(
        median=statistics.median(ordered),
        q1=q1,
        q3=q3,
        min=ordered[0],
        max=ordered[-1],
        runs=len(ordered),
    )


def benchmark_callable(
    fn: Callable[[], object],
    batch_size: int,
    repeat: int = 10,
    warmup: int = 2,
    device: Optional[torch.device] = None,
    measure_memory: bool = True,
) -> dict:
    """Time ``fn`` (one batch of ``batch_size`` images) and measure its peak memory.

    Returns:
        dict: ``time`` (summary in seconds per batch), ``fps_median`` (images/s at the median),
        ``fps_min``/``fps_max`` (at the slowest/fastest run) and ``peak_mem_bytes``.
    """
    times = time_runs(fn, repeat, warmup, device)
    summary = summarize(times)
    out = dict(
        time=summary,
        fps_median=batch_size / summary['median'],
        fps_min=batch_size / summary['max'],
        fps_max=batch_size / summary['min'],
        batch_size=batch_size,
    )
    out['peak_mem_bytes'] = peak_memory(fn, device) if measure_memory else None
    return out


def model_runner(
    model: nn.Module,
    task: str,
    shape,
    batch_size: int = 1,
    backbone_only: bool = False,
    mode: str = 'predict',
    device: Optional[torch.device] = None,
) -> Callable[[], object]:
    """A no-grad closure running one inference batch of random images through ``model``.

    ``mode='predict'`` runs the full inference (with post-processing: NMS, mask pasting,
    segmentation resizing); ``'tensor'`` the raw network outputs.
    """
    device = device or torch.device('cpu')
    model.to(device)
    model.eval()  # NOTE: some backbones' train() returns None, so don't chain
    img = torch.randn(batch_size, 3, *shape, device=device)
    samples = None if backbone_only else _dummy_samples(task, shape, batch_size, False)

    @torch.no_grad()
    def run():
        if backbone_only:
            return model(img)
        return model(img, samples, mode=mode)

    return run


def _dummy_samples(
    task: str,
    shape,
    batch_size: int,
    with_gt: bool,
    num_classes: int = 2,
    device: Optional[torch.device] = None,
):
    """Data samples for ``batch_size`` images of ``shape``; random ground truth if ``with_gt``."""
    h, w = shape
    meta = dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
        scale_factor=(1.0, 1.0),
    )
    gen = torch.Generator().manual_seed(0)
    samples = []
    if task == 'det':
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData

        for _ in range(batch_size):
            sample = DetDataSample(metainfo=meta)
            if with_gt:
                n = 3
                xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
                wh = (torch.rand(n, 2, generator=gen) * 0.3 + 0.1) * torch.tensor([w, h])
                boxes = torch.cat([xy, xy + wh], dim=1)
                masks = torch.zeros(n, h, w, dtype=torch.uint8)
                for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
                    masks[i, y0:y1, x0:x1] = 1
                sample.gt_instances = InstanceData(
                    bboxes=boxes,
                    labels=torch.randint(0, num_classes, (n,), generator=gen),
                    masks=BitmapMasks(masks.numpy(), h, w),
                )
            samples.append(sample.to(device) if device is not None else sample)
    else:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        for _ in range(batch_size):
            sample = SegDataSample(metainfo=dict(meta, padding_size=[0, 0, 0, 0]))
            if with_gt:
                sample.gt_sem_seg = PixelData(
                    data=torch.randint(0, num_classes, (1, h, w), generator=gen)
                )
            samples.append(sample.to(device) if device is not None else sample)
    return samples


def _num_classes(model: nn.Module) -> int:
    for name in ('decode_head', 'roi_head', 'bbox_head'):
        head = getattr(model, name, None)
        head = getattr(head, 'bbox_head', head)
        if head is not None and getattr(head, 'num_classes', None):
            return int(head.num_classes)
    return 2


def train_step_runner(
    model: nn.Module,
    task: str,
    shape,
    batch_size: int = 1,
    backbone_only: bool = False,
    device: Optional[torch.device] = None,
) -> Callable[[], object]:
    """A closure running one training step's forward and backward on random images.

    Train mode (dropout, drop-path and BatchNorm statistics as in training). The whole model
    computes its losses on random ground truth (boxes and masks for detectors, label maps for
    segmentors; ``mode='loss'``); a backbone alone back-propagates the sum of its outputs'
    means. Gradients are reset to None before each step; the optimizer update is not timed (its
    cost depends on the optimizer, not on the architecture).
    """
    device = device or torch.device('cpu')
    model.to(device)
    model.train()
    img = torch.randn(batch_size, 3, *shape, device=device)
    samples = (
        None
        if backbone_only
        else _dummy_samples(task, shape, batch_size, True, _num_classes(model), device)
    )
    params = [p for p in model.parameters() if p.requires_grad]

    def run():
        for p in params:
            p.grad = None
        if backbone_only:
            loss = sum(o.float().mean() for o in _tensors(model(img)))
        else:
            loss, _ = model.parse_losses(model(img, samples, mode='loss'))
        loss.backward()
        return loss.detach()

    return run


def _tensors(out) -> List[torch.Tensor]:
    """Every tensor in a (nested) model output, data samples included, in a fixed order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if hasattr(out, 'to_dict') and hasattr(out, 'keys'):  # mmengine data elements
        return [t for k in sorted(out.keys()) for t in _tensors(getattr(out, k))]
    return []


def max_abs_diff(out_a, out_b) -> Optional[float]:
    """Largest absolute difference between two model outputs of the same structure.

    Returns None when the outputs differ in structure or shapes (e.g. two configs).
    """
    ta, tb = _tensors(out_a), _tensors(out_b)
    if not ta or len(ta) != len(tb) or any(a.shape != b.shape for a, b in zip(ta, tb)):
        return None
    return max(
        float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0
        for a, b in zip(ta, tb)
    )


def compile_model(
    model: nn.Module,
    backbone_only: bool = False,
    dynamic: Optional[bool] = None,
    fullgraph: bool = False,
) -> nn.Module:
    """Compile ``model`` (a backbone) or the backbone of a detector/segmentor, in place.

    ``nn.Module.compile`` keeps the module and its state-dict names; the backbone is where the
    attention runs, while the heads' post-processing (NMS, mask pasting) is data dependent.
    """
    if backbone_only:
        model.compile(dynamic=dynamic, fullgraph=fullgraph)
        return model
    from mmattn.engine.compile import compile_backbone

    return compile_backbone(model, dynamic=dynamic, fullgraph=fullgraph)


def compare_callables(
    fns: Dict[str, Callable[[], object]],
    batch_size: int,
    rounds: int = 3,
    repeat: int = 3,
    warmup: int = 1,
    device: Optional[torch.device] = None,
    measure_memory: bool = True,
) -> dict:
    """Time two (or more) closures in alternating rounds and compare them.

    Each side first runs ``warmup`` untimed calls (the first call's time is kept as
    ``first_call_s``: it includes compilation for a compiled side). Then ``rounds`` rounds, each
    timing ``repeat`` calls of every side, the order reversed every other round.

    Returns:
        dict: ``sides`` (per side: ``time`` summary over all timed calls, ``round_medians``,
        ``best`` (smallest round median), ``fps_best``, ``first_call_s``, ``peak_mem_bytes``),
        ``order`` (the side names) and, for two sides A, B, ``speedup`` = A's best / B's best
        (> 1: B is faster) with ``speedup_rounds`` (the same per round) and ``mem_ratio``
        (B / A peak memory).
    """
    if rounds < 1 or repeat < 1 or warmup < 0:
        raise ValueError('rounds and repeat must be >= 1 and warmup >= 0')
    device = device or torch.device('cpu')
    names = list(fns)
    first = {}
    for name in names:
        for i in range(warmup):
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            if i == 0:
                first[name] = time.perf_counter() - start
    times: Dict[str, List[float]] = {n: [] for n in names}
    medians: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            ts = time_runs(fns[name], repeat, 0, device)
            times[name] += ts
            medians[name].append(statistics.median(ts))
    sides = {}
    for name in names:
        best = min(medians[name])
        sides[name] = dict(
            time=summarize(times[name]),
            round_medians=medians[name],
            best=best,
            fps_best=batch_size / best,
            first_call_s=first.get(name),
            peak_mem_bytes=peak_memory(fns[name], device) if measure_memory else None,
        )
    out = dict(sides=sides, order=names, batch_size=batch_size, rounds=rounds, repeat=repeat)
    if len(names) == 2:
        a, b = names
        out['speedup'] = sides[a]['best'] / sides[b]['best']
        out['speedup_rounds'] = [x / y for x, y in zip(medians[a], medians[b])]
        if measure_memory and sides[a]['peak_mem_bytes']:
            out['mem_ratio'] = sides[b]['peak_mem_bytes'] / sides[a]['peak_mem_bytes']
    return out


def build_runner(
    model: nn.Module,
    task: str,
    shape: Tuple[int, int],
    batch_size: int = 1,
    backbone_only: bool = False,
    mode: str = 'predict',
    device: Optional[torch.device] = None,
) -> Callable[[], object]:
    """:func:`model_runner` for ``'predict'``/``'tensor'``, :func:`train_step_runner` for
    ``'train'``."""
    if mode == 'train':
        return train_step_runner(model, task, shape, batch_size, backbone_only, device)
    return model_runner(model, task, shape, batch_size, backbone_only, mode, device)


def compiled_copy(
    model: nn.Module, backbone_only: bool, dynamic: Optional[bool] = None, fullgraph: bool = False
) -> nn.Module:
    """A deep copy of ``model`` (same weights) with its backbone compiled (see
    :func:`compile_model`)."""
    return compile_model(copy.deepcopy(model), backbone_only, dynamic, fullgraph)
