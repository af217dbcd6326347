"""Export a detector's or segmentor's network to ONNX with dynamic batch, height and width.

We use torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``: ``torch.export`` then
onnxscript). The TorchScript tracer (``dynamo=False``) records Python ints as constants, so an
attention that computes its region, window or table size from the input is traced at the export
size only (measured: BiFormer exports, then fails in onnxruntime at any other size); the dynamo
exporter keeps sizes symbolic and reports every axis it had to fix.

Export-only code paths (:func:`integral_scale_interpolate`,
:func:`matrix_adaptive_avg_pool2d`) are active only inside :func:`export_onnx` and equal the
eager ops (tests/test_deploy).
"""

import contextlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.analysis.flops import _flatten_tensors, _TensorForward, build_model_from_cfg, task_of
from mmattn.utils.cli import UserInputError

from .onnx_ops import ONNX_TRANSLATIONS

#: Opsets the dynamo exporter writes and onnxruntime 1.32 runs.
SUPPORTED_OPSETS = range(18, 24)
#: The smallest height and width the tool exports and verifies at.
MIN_SIZE = 32

_INTERPOLATE = F.interpolate
_ADAPTIVE_AVG_POOL2D = F.adaptive_avg_pool2d


def integral_scale_interpolate(
    input,
    size=None,
    scale_factor=None,
    mode='nearest',
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    """``F.interpolate`` with an integral ``scale_factor`` given as the output ``size``.

    Why: ``torch.export`` computes ``floor(float(h) * 2.0)`` for ``scale_factor=2`` and cannot
    reason about it symbolically, so it fixes the input size (the FPN necks upsample this way);
    ``h * 2`` stays symbolic. For an integral factor the two calls sample the same source
    positions (scale ``in / out == 1 / factor`` either way), so the values are equal.
    """
    if size is None and scale_factor is not None and not recompute_scale_factor:
        factors = (
            scale_factor
            if isinstance(scale_factor, (tuple, list))
            else [scale_factor] * (input.dim() - 2)
        )
        if all(float(f) == int(f) and f >= 1 for f in factors):
            size = [s * int(f) for s, f in zip(input.shape[2:], factors)]
            return _INTERPOLATE(
                input, size=size, mode=mode, align_corners=align_corners, antialias=antialias
            )
    return _INTERPOLATE(
        input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias
    )


def _adaptive_pool_matrix(n_in, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """``(n_out, n_in)`` averaging weights of 1-D adaptive average pooling: output ``i`` is the
    mean of inputs ``floor(i * n_in / n_out)`` to ``ceil((i + 1) * n_in / n_out) - 1``."""
    i = torch.arange(n_out, device=like.device)
    start = (i * n_in) // n_out
    end = ((i + 1) * n_in + n_out - 1) // n_out
    j = torch.arange(n_in, device=like.device)[None, :]
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def matrix_adaptive_avg_pool2d(input: torch.Tensor, output_size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` as ``Ph @ x @ Pw^T`` with averaging matrices built from the
    input size.

    Why: ``torch.export`` decomposes adaptive pooling of a size that the output does not divide
    into gathers whose indices are computed at the export size and stored as constants (Agent
    attention's agent pooling then fails in onnxruntime at any other size). The products give
    the same values up to float rounding (the test compares them).
    """
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = input.shape[-2:]
    oh = h if oh is None else oh
    ow = w if ow is None else ow
    rows = _adaptive_pool_matrix(h, oh, input)  # (oh, h)
    cols = _adaptive_pool_matrix(w, ow, input)  # (ow, w)
    return rows @ input @ cols.transpose(0, 1)


def mmseg_upsample_forward(self, x: torch.Tensor) -> torch.Tensor:
    """``mmseg.models.utils.Upsample.forward`` with an integral scale as an integer product.

    Why: the original sizes its output as ``int(h * 2.0)``; ``torch.export`` cannot keep that
    float symbolic and silently stores the export size's value, so Semantic FPN's head
    upsampled to a fixed size at every input size (6-9% off in onnxruntime, no error).
    ``h * 2`` is the same int in eager.
    """
    from mmseg.models.utils import resize

    factor = self.scale_factor
    if not self.size and not isinstance(factor, tuple) and float(factor) == int(factor):
        size = [t * int(factor) for t in x.shape[-2:]]
        return resize(x, size, None, self.mode, self.align_corners)
    return _MMSEG_UPSAMPLE_FORWARD[0](self, x)


_MMSEG_UPSAMPLE_FORWARD = []


@contextlib.contextmanager
def _export_patches():
    """Swap in the export-only paths for the duration of an export."""
    F.interpolate = integral_scale_interpolate
    F.adaptive_avg_pool2d = matrix_adaptive_avg_pool2d
    try:
        from mmseg.models.utils import Upsample
    except ImportError:
        Upsample = None
    if Upsample is not None:
        _MMSEG_UPSAMPLE_FORWARD[:] = [Upsample.forward]
        Upsample.forward = mmseg_upsample_forward
    try:
        yield
    finally:
        F.interpolate = _INTERPOLATE
        F.adaptive_avg_pool2d = _ADAPTIVE_AVG_POOL2D
        if Upsample is not None:
            Upsample.forward = _MMSEG_UPSAMPLE_FORWARD[0]


class SegEnd2End(nn.Module):
    """Raw image ``(N, 3, H, W)`` float 0-255 in the config's channel order -> ``seg_pred``
    ``(N, H, W)`` int64, as MMSegmentation's ``predict`` computes it without padding: channel
    swap and normalisation of ``SegDataPreProcessor``, the network, a bilinear resize of the
    logits to the input size (the decode head's ``align_corners``), argmax (or a 0.5 threshold
    on a single-channel head's sigmoid, as ``postprocess_result`` does)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        pre = model.data_preprocessor
        # mmseg's SegDataPreProcessor names it channel_conversion (mmengine's: _channel_...)
        self.swap = bool(getattr(pre, 'channel_conversion', False))
        self.register_buffer('pixel_mean', pre.mean.detach().clone().float().view(1, -1, 1, 1))
        self.register_buffer('pixel_std', pre.std.detach().clone().float().view(1, -1, 1, 1))
        self.align_corners = model.decode_head.align_corners
        self.threshold = (
            getattr(model.decode_head, 'threshold', 0.3)
            if model.decode_head.out_channels == 1
            else None
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.swap:
            img = img.flip(1)
        x = (img - self.pixel_mean) / self.pixel_std
        logits = self.model(x, None, mode='tensor')
        logits = F.interpolate(
            logits, size=img.shape[2:], mode='bilinear', align_corners=self.align_corners
        )
        if self.threshold is not None:
            return (logits.sigmoid() > self.threshold).squeeze(1).long()
        return logits.argmax(dim=1)


def build_export_model(cfg, checkpoint: Optional[str] = None) -> Tuple[nn.Module, str]:
    """Build ``cfg``'s model in eval mode on CPU and load ``checkpoint`` (whole model, strict).

    Raises:
        UserInputError: The config has no model, or the checkpoint does not match it.
    """
    if not isinstance(cfg.get('model'), dict):
        raise UserInputError(
            'the config defines no `model`; pass a detector or segmentor config from configs/'
        )
    try:
        task = task_of(cfg)
    except ValueError as err:
        raise UserInputError(str(err)) from None
    model = build_model_from_cfg(cfg)
    if checkpoint:
        from mmattn.utils.checkpoint import safe_load

        ckpt = safe_load(checkpoint)
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise UserInputError(f'checkpoint {checkpoint} holds no state_dict')
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
        if missing or unexpected or shapes:
            parts = []
            for name, keys in (
                ('missing', missing),
                ('unexpected', unexpected),
                ('shape-mismatched', shapes),
            ):
                if keys:
                    parts.append(f'{len(keys)} {name} (e.g. {keys[0]})')
            raise UserInputError(
                f"checkpoint {checkpoint} does not match the config's model: "
                f'{", ".join(parts)}; pass the checkpoint trained with this '
                f'config'
            )
        model.load_state_dict(state, strict=True)
    return model, task


class _Flat(nn.Module):
    """A backbone's outputs as a flat tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor):
        return _flatten_tensors(self.model(img))


class _DetTensor(nn.Module):
    """A single-stage detector's tensor mode (per-level head outputs, flattened in order),
    without the ``DetDataSample`` per image that ``_TensorForward`` builds (a Python loop over
    the batch would fix its size; the head's forward does not read them)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor):
        return _flatten_tensors(self.model(img, None, mode='tensor'))


def export_wrapper(model: nn.Module, task: str, mode: str, shape: Sequence[int]) -> nn.Module:
    """The module whose ``forward(img)`` is exported (``task='backbone'``: a bare backbone)."""
    if task == 'backbone':
        return _Flat(model).eval()
    if mode == 'tensor' and task == 'det':
        if getattr(model, 'with_rpn', False) or hasattr(model, 'roi_head'):
            from .det_end2end import DetEnd2End

            DetEnd2End(model)  # a two-stage detector end2end refuses too: its reason, once
            raise UserInputError(
                f'--mode tensor of {type(model).__name__} runs the RPN (NMS, RoI selection) '
                'with data-dependent sizes; use --mode end2end'
            )
        return _DetTensor(model).eval()
    if mode == 'tensor':
        return _TensorForward(model, task, tuple(shape)).eval()
    if mode == 'end2end' and task == 'seg':
        return SegEnd2End(model).eval()
    if mode == 'end2end' and task == 'det':
        from .det_end2end import DetEnd2End

        return DetEnd2End(model).eval()
    raise UserInputError(f'--mode {mode} is not implemented for {task} models; use --mode tensor')


def export_onnx(
    model: nn.Module,
    task: str,
    out: str,
    mode: str = 'tensor',
    shape: Sequence[int] = (128, 160),
    opset: int = 18,
    batch: int = 2,
) -> Dict[str, object]:
    """Export ``model`` to ``out``; return ``dict(outputs=[names], fixed=[notes],
    bounds=[notes])``.

    Batch, height and width are exported as dynamic (the example batch is 2 by default:
    ``torch.export`` specialises a size-1 axis). An axis the exporter had to fix (an op that is
    not size-generic) is reported in ``fixed``; an axis it bounded (a Python branch on the size,
    evaluated at the export size, or the deepest stage's size kept above 1) in ``bounds``,
    e.g. ``'height must be >= 64'``.
    """
    if opset not in SUPPORTED_OPSETS:
        raise UserInputError(
            f'--opset {opset} is not supported; use one of '
            f'{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}'
        )
    wrapper = export_wrapper(model, task, mode, shape)
    img = torch.rand(batch, 3, *shape) * (255 if mode == 'end2end' else 1)
    auto = torch.export.Dim.AUTO
    dynamic = {'img': {0: auto, 2: auto, 3: auto}}
    # optimize=False: onnxscript 0.7.2's constant folding fails on a split by a symbolic size
    with torch.no_grad(), _export_patches():
        program = torch.onnx.export(
            wrapper,
            (img,),
            out,
            input_names=['img'],
            dynamo=True,
            dynamic_shapes=dynamic,
            opset_version=opset,
            external_data=False,
            verbose=False,
            optimize=False,
            custom_translation_table=ONNX_TRANSLATIONS,
        )
    import onnx

    proto = onnx.load(out, load_external_data=False)
    if task == 'seg' and mode == 'end2end':
        names = ['seg_pred']
    elif task == 'det' and mode == 'end2end':
        names = wrapper.output_names
    else:
        names = [f'output{i}' for i in range(len(proto.graph.output))]
    for o, name in zip(proto.graph.output, names):
        o.name, old = name, o.name
        for node in proto.graph.node:
            node.output[:] = [name if x == old else x for x in node.output]
            node.input[:] = [name if x == old else x for x in node.input]
    onnx.save(proto, out)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    fixed = [
        f'{axis} fixed to {d.dim_value}'
        for axis, d in zip(('batch', 'channels', 'height', 'width'), dims)
        if axis != 'channels' and d.HasField('dim_value')
    ]
    return dict(outputs=names, fixed=fixed, bounds=_bounded_axes(program.exported_program))


def _finite_int(value) -> Optional[int]:
    """``int(value)``, or None for sympy's infinities (torch's ``int_oo`` claims to be
    finite, so it is recognised by failing the conversion)."""
    try:
        return int(value)
    except (OverflowError, TypeError, AttributeError):
        return None


def _bounded_axes(exported) -> List[str]:
    """Notes for the input axes that ``torch.export`` bounded: a Python ``if`` on a size is
    evaluated at the export size and kept only as a range on that axis, which ONNX cannot
    express, so the file would silently take the export size's branch outside it."""
    inp = next(n for n in exported.graph.nodes if n.op == 'placeholder' and n.name == 'img')
    notes = []
    for axis, size in zip(('batch', 'channels', 'height', 'width'), inp.meta['val'].shape):
        if axis == 'channels' or not isinstance(size, torch.SymInt):
            continue
        vr = exported.range_constraints.get(size.node.expr)
        if vr is None:
            continue
        lower, upper = int(vr.lower), _finite_int(vr.upper)
        # (lower bounds up to MIN_SIZE come from 0/1 specialisation of the deepest stage's size)
        if lower > (2 if axis == 'batch' else MIN_SIZE) or upper is not None:
            span = f'{lower}..{upper}' if upper is not None else f'>= {lower}'
            notes.append(f'{axis} must be {span}')
    return notes


def run_onnx(path: str, img: np.ndarray, threads: int = 1) -> List[np.ndarray]:
    """Run ``path`` in stock onnxruntime (CPU, no custom-op library)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    return sess.run(None, {sess.get_inputs()[0].name: img.astype(np.float32)})


def torch_reference(model: nn.Module, task: str, mode: str, img: torch.Tensor):
    """What PyTorch gives for ``img``: tensor mode's flattened outputs, or (end2end) what
    ``model.test_step`` gives for the raw image: a segmentor's ``pred_sem_seg``, a detector's
    ``pred_instances`` (one dict per image)."""
    with torch.no_grad():
        if mode == 'tensor':
            shape = tuple(img.shape[2:])
            return [t.numpy() for t in _TensorForward(model, task, shape)(img)]
        if task == 'det':
            from .det_end2end import det_reference

            return det_reference(model, img, bool(getattr(model, 'with_mask', False)))
        from mmseg.structures import SegDataSample

        h, w = img.shape[2:]
        meta = dict(img_shape=(h, w), ori_shape=(h, w))
        data = dict(
            inputs=[im for im in img],
            data_samples=[SegDataSample(metainfo=meta) for _ in range(img.shape[0])],
        )
        res = model.test_step(data)
        return [np.stack([r.pred_sem_seg.data[0].numpy() for r in res])]


def compare(
    ref: Sequence[np.ndarray], got: Sequence[np.ndarray], mode: str, det_score_thr: float = 0.3
) -> Dict[str, float]:
    """Tensor mode: the largest ``max|a-b| / max|b|`` over outputs; seg end2end: the share of
    equal pixels and the number of classes in PyTorch's map; det end2end (``ref`` from
    ``test_step``): the boxes above 0.3 matched
    (:func:`~mmattn.deploy.det_end2end.compare_detections`)."""
    if mode == 'end2end' and ref and isinstance(ref[0], dict):
        from .det_end2end import compare_detections

        return compare_detections(ref, got, det_score_thr)
    if len(ref) != len(got):
        raise AssertionError(f'{len(got)} ONNX outputs for {len(ref)} PyTorch outputs')
    for r, g in zip(ref, got):
        if tuple(r.shape) != tuple(g.shape):
            raise AssertionError(f'ONNX output shape {g.shape} != PyTorch {r.shape}')
    if mode == 'tensor':
        rel = max(
            float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-12)) for r, g in zip(ref, got)
        )
        return dict(max_rel_diff=rel)
    # the classes in PyTorch's map: one class everywhere would make equal pixels vacuous
    return dict(equal_pixels=float((ref[0] == got[0]).mean()), classes=len(np.unique(ref[0])))


def verify_onnx(
    model: nn.Module,
    task: str,
    path: str,
    mode: str,
    shapes: Sequence[Sequence[int]],
    batch: int = 1,
    seed: int = 0,
    det_score_thr: float = 0.3,
) -> List[Dict[str, object]]:
    """Run ``path`` beside PyTorch at each of ``shapes``; one dict of differences per shape
    (a detector's boxes are compared above ``det_score_thr``)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for shape in shapes:
        if mode == 'tensor':
            img = torch.randn(batch, 3, *shape, generator=gen)
        else:  # a smooth image with edges, so that the label map is not noise
            img = _test_image(batch, shape, gen)
        ref = torch_reference(model, task, mode, img)
        got = run_onnx(path, img.numpy())
        rows.append(dict(shape=tuple(shape), **compare(ref, got, mode, det_score_thr)))
    return rows


def spread_seg_logits(model: nn.Module, shape: Sequence[int] = (128, 160), seed: int = 0):
    """Centre a random segmentor's class logits, so that its label map is not one class.

    With random weights every pixel's feature points nearly the same way, so one class wins
    everywhere and "equal pixels" compares constant maps. Setting ``decode_head.conv_seg``'s
    bias to minus its response to the mean feature of a test image makes each pixel's class
    follow its own deviation from that mean. For checks with random weights only.
    """
    conv = model.decode_head.conv_seg
    seen = []
    hook = conv.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        torch_reference(
            model, 'seg', 'end2end', _test_image(1, shape, torch.Generator().manual_seed(seed))
        )
    finally:
        hook.remove()
    mean = seen[0].mean((0, 2, 3))
    with torch.no_grad():
        conv.bias.copy_(-(conv.weight.flatten(1) @ mean))


def _test_image(batch: int, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    """Raw 0-255 images: a few flat rectangles on a gradient plus mild noise."""
    h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    img = torch.stack([yy, xx, 1 - yy]).expand(batch, 3, h, w) * 160
    img = img.clone()
    for _ in range(4):
        y0, x0 = (torch.randint(0, max(s // 2, 1), (1,), generator=gen).item() for s in shape)
        color = torch.rand(batch, 3, 1, 1, generator=gen) * 255
        img[:, :, y0 : y0 + h // 3, x0 : x0 + w // 3] = color
    return (img + torch.randn(img.shape, generator=gen) * 4).clamp(0, 255)
