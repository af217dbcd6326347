"""Parameter and FLOP counting that sees attention.

We use MMEngine's jit-trace counter (:class:`mmengine.analysis.FlopAnalyzer`, a port of
fvcore) and add the handles it lacks for the products attention is made of:
``aten::scaled_dot_product_attention`` (uncounted by MMEngine 0.10), ``aten::baddbmm`` /
``aten::addbmm``, and broadcasting-aware ``aten::matmul`` and ``aten::einsum`` (MMEngine's
versions undercount a broadcast left operand and allocate dense arrays for einsum).

Convention: one multiply-add is one FLOP (the papers' convention, and fvcore's). Norm layers and
the bilinear/nearest resizes are counted by MMEngine's default handles; element-wise ops
(softmax, activations, additions) are not counted, as in fvcore.
"""

import string
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import prod
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

# Aten ops that carry multiply-adds; if one of these is unsupported the count is wrong, so the
# counter reports it loudly (the tests assert none is left for any registered op).
PRODUCT_OPS = frozenset(
    {
        'aten::matmul',
        'aten::mm',
        'aten::bmm',
        'aten::baddbmm',
        'aten::addbmm',
        'aten::addmm',
        'aten::einsum',
        'aten::linear',
        'aten::_convolution',
        'aten::conv1d',
        'aten::conv2d',
        'aten::conv3d',
        'aten::conv_transpose2d',
        'aten::scaled_dot_product_attention',
        'aten::_scaled_dot_product_attention_math',
        'aten::tensordot',
        'aten::bilinear',
        'aten::_native_multi_head_attention',
    }
)


def _matmul_macs(a: Sequence[int], b: Sequence[int]) -> int:
    """Multiply-adds of ``a @ b`` with torch's broadcasting rules."""
    a, b = list(a), list(b)
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    if a[-1] != b[-2]:
        raise ValueError(f'matmul shapes do not contract: {a} @ {b}')
    batch = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return prod(batch) * a[-2] * a[-1] * b[-1]


def matmul_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::matmul`` / ``aten::mm`` / ``aten::bmm``: broadcast batch x n x k x m."""
    return _matmul_macs(get_shape(inputs[0]), get_shape(inputs[1]))


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::baddbmm(bias, a, b)`` / ``aten::addbmm``: the product's multiply-adds."""
    return _matmul_macs(get_shape(inputs[1]), get_shape(inputs[2]))


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::scaled_dot_product_attention(q, k, v, ...)``.

    ``q`` is ``(..., L, E)``, ``k`` is ``(..., S, E)``, ``v`` is ``(..., S, Ev)``: the
    logits cost ``L*S*E`` and the weighted sum ``L*S*Ev`` multiply-adds per batch element
    (softmax, scale and mask are element-wise and not counted).
    """
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = torch.broadcast_shapes(tuple(q[:-2]), tuple(k[:-2]), tuple(v[:-2]))
    length, source = q[-2], k[-2]
    return prod(batch) * length * source * (q[-1] + v[-1])


def einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """Multiply-adds of a two-operand einsum: the product of all distinct index sizes.

    For more operands the cost of a left-to-right evaluation is returned.
    """
    equation = equation.replace(' ', '')
    lhs = equation.split('->')[0]
    terms = lhs.split(',')
    used = set(c for c in equation if c.isalpha())
    spare = [c for c in string.ascii_letters if c not in used]
    sizes: Dict[str, int] = {}
    expanded = []
    ell_letters: List[str] = []
    for term, shape in zip(terms, shapes):
        if '...' in term:
            n_ell = len(shape) - (len(term) - 3)
            while len(ell_letters) < n_ell:
                ell_letters.insert(0, spare.pop())
            term = term.replace('...', ''.join(ell_letters[len(ell_letters) - n_ell :]))
        for letter, size in zip(term, shape):
            # broadcast dimensions of size 1 take the other operand's size
            sizes[letter] = max(sizes.get(letter, 1), int(size))
        expanded.append(term)
    if len(expanded) == 1:
        return prod(sizes[c] for c in set(expanded[0]))
    total, acc = 0, set(expanded[0])
    for term in expanded[1:]:
        letters = acc | set(term)
        total += prod(sizes[c] for c in letters)
        acc = letters  # over-approximates the intermediate; exact for two operands
    return total


def einsum_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::einsum(equation, [operands])``."""
    equation = inputs[0].toIValue()
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    return einsum_macs(equation, shapes)


EXTRA_HANDLES = {
    'aten::matmul': matmul_flop_jit,
    'aten::mm': matmul_flop_jit,
    'aten::bmm': matmul_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::addbmm': baddbmm_flop_jit,
    'aten::einsum': einsum_flop_jit,
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
}


@dataclass
class FlopsResult:
    """What :func:`count_flops` measured.

    Attributes:
        flops (int): Multiply-adds of one forward pass.
        params (int): Number of parameters of the module.
        by_operator (dict): FLOPs per counted operator (``'matmul'``, ``'conv'``, ...).
        by_module (dict): FLOPs per sub-module name (``''`` is the whole module).
        unsupported (dict): Uncounted aten ops and how often they ran.
    """

    flops: int
    params: int
    by_operator: Dict[str, int] = field(default_factory=dict)
    by_module: Dict[str, int] = field(default_factory=dict)
    unsupported: Dict[str, int] = field(default_factory=dict)

    @property
    def uncounted_products(self) -> Dict[str, int]:
        """Unsupported ops that carry multiply-adds: the count misses these."""
        return {k: v for k, v in self.unsupported.items() if k in PRODUCT_OPS}


def agent_biases_as_resizes(op, hw_shape: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``AgentAttention.agent_biases`` as the official code computes them: ``F.interpolate``
    of each table to the map, then of the agent grid (same values as the op's matrix
    products). The papers' FLOPs count these resizes as element-wise work, not the products."""
    heads, n = op.num_heads, op.agent_num
    h0, w0 = op.pretrain_hw
    size = tuple(hw_shape)

    def resize(t):
        return (
            t
            if tuple(t.shape[-2:]) == size
            else F.interpolate(t, size=size, mode='bilinear', align_corners=False)
        )

    def agents(t):  # (heads, n, H, W) -> (heads, A', HW)
        if tuple(op.agent_shape) == tuple(op.pretrain_grid):
            return t.reshape(heads, n, -1)
        t = t.reshape(heads, *op.pretrain_grid, -1).permute(0, 3, 1, 2)
        t = F.interpolate(t, size=tuple(op.agent_shape), mode='bilinear', align_corners=False)
        return t.flatten(2).transpose(1, 2)

    an = resize(op.an_bias) + resize((op.ah_bias + op.aw_bias).reshape(heads, n, h0, w0))
    na = resize(op.na_bias) + resize(
        (op.ha_bias + op.wa_bias).reshape(heads, h0, w0, n).permute(0, 3, 1, 2)
    )
    return agents(an), agents(na).transpose(1, 2)


@contextmanager
def papers_formulation(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the ops of ``model`` compute what the papers count.

    Agent attention takes its math path with the official bias resizes
    (:func:`agent_biases_as_resizes`) instead of its CPU path, which folds the biases into
    the logits' GEMMs (extra products the papers do not have).
    """
    from mmattn.models.attentions import AgentAttention

    ops = [m for m in model.modules() if isinstance(m, AgentAttention)]
    saved = [op.fused_attn for op in ops]
    for op in ops:
        op.fused_attn = False
        op.agent_biases = lambda hw, op=op: agent_biases_as_resizes(op, hw)
    try:
        yield model
    finally:
        for op, fused in zip(ops, saved):
            op.fused_attn = fused
            del op.agent_biases


def make_analyzer(model: nn.Module, inputs: Tuple) -> FlopAnalyzer:
    """An MMEngine :class:`FlopAnalyzer` with mmattn's attention handles installed."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**EXTRA_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def count_params(model: nn.Module) -> int:
    """All parameters of ``model`` (trainable or not, as the papers report)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, inputs, by_module: bool = False) -> FlopsResult:
    """Count multiply-adds of ``model(*inputs)`` by tracing it once (no grad).

    Args:
        model (nn.Module): Module to analyse; put it in eval mode first.
        inputs (Tensor | tuple): Positional inputs of ``model.forward``.
        by_module (bool): Also fill :attr:`FlopsResult.by_module`. Defaults to False.

    Returns:
        FlopsResult: FLOPs, parameters, breakdowns and unsupported ops.
    """
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    analyzer = make_analyzer(model, inputs)
    with torch.no_grad(), papers_formulation(model):
        total = int(analyzer.total())
        ops = {k: int(v) for k, v in analyzer.by_operator().items()}
        modules = {k: int(v) for k, v in analyzer.by_module().items()} if by_module else {}
        unsupported = dict(analyzer.unsupported_ops())
    return FlopsResult(total, count_params(model), ops, modules, unsupported)


# ------------------------------------------------------------------ configs -> models
def task_of(cfg) -> str:
    """``'det'`` or ``'seg'`` from a config's default scope."""
    scope = cfg.get('default_scope', None) or ''
    if scope.startswith('mmdet'):
        return 'det'
    if scope.startswith('mmseg'):
        return 'seg'
    raise ValueError(
        f'cannot tell the task of a config with default_scope={scope!r}; expected mmdet or mmseg'
    )


#: Input (H, W) of the papers' FLOPs: 1280x800 COCO images (landscape) and 512x2048 ADE20K.
DEFAULT_SHAPES = {'det': (800, 1280), 'seg': (512, 2048)}


def build_model_from_cfg(cfg, backbone_only: bool = False) -> nn.Module:
    """Build the detector/segmentor of ``cfg`` (or only its backbone), eval mode, on CPU."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    import mmattn.models  # noqa: F401

    init_default_scope(cfg.get('default_scope', 'mmattn'))
    model_cfg = cfg.model.backbone if backbone_only else cfg.model
    model_cfg = model_cfg.copy()
    # Weights don't change FLOPs: never try to fetch a pretrained checkpoint.
    model_cfg.pop('pretrained', None)
    if 'init_cfg' in model_cfg:
        model_cfg['init_cfg'] = None
    if not backbone_only and isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone'] = dict(model_cfg['backbone'], init_cfg=None)
    model = MODELS.build(model_cfg)
    from mmengine.model import revert_sync_batchnorm

    model = revert_sync_batchnorm(model)
    model.eval()  # NOTE: some backbones' train() returns None, so don't chain
    return model


class _TensorForward(nn.Module):
    """Wraps a detector/segmentor so that ``forward(img)`` runs its ``'tensor'`` mode.

    Tensor mode is MMDetection/MMSegmentation's dummy forward: backbone, neck and heads (for
    two-stage detectors: RPN proposals, the box head on them and the mask head on the first
    100), without post-processing - what ``get_flops`` counted in MMDet 2.x.
    """

    def __init__(self, model: nn.Module, task: str, shape: Tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.shape = tuple(shape)

    def forward(self, img: torch.Tensor):
        samples = None
        if self.task == 'det':
            from mmdet.structures import DetDataSample

            meta = dict(
                img_shape=self.shape,
                ori_shape=self.shape,
                pad_shape=self.shape,
                batch_input_shape=self.shape,
                scale_factor=(1.0, 1.0),
            )
            samples = [DetDataSample(metainfo=meta) for _ in range(img.shape[0])]
        out = self.model(img, samples, mode='tensor')
        return _flatten_tensors(out)


def _flatten_tensors(out) -> Tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return tuple(t for o in out for t in _flatten_tensors(o))
    return ()


def config_complexity(
    cfg,
    shape: Optional[Tuple[int, int]] = None,
    backbone_only: bool = False,
    by_module: bool = False,
) -> dict:
    """Params and FLOPs of a config's model (or backbone) at input ``shape`` = (H, W).

    Args:
        cfg (Config | str): Config or its path.
        shape (tuple, optional): Input (H, W). Defaults to :data:`DEFAULT_SHAPES` of the
            config's task.
        backbone_only (bool): Count only ``model.backbone``. Defaults to False.
        by_module (bool): Also return the per-module breakdown. Defaults to False.

    Returns:
        dict: ``task``, ``shape``, ``params``, ``flops``, ``by_operator``, ``unsupported``,
        ``uncounted_products`` (and ``by_module``).
    """
    from mmengine.config import Config

    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    task = task_of(cfg)
    shape = tuple(shape) if shape else DEFAULT_SHAPES[task]
    model = build_model_from_cfg(cfg, backbone_only)
    img = torch.randn(1, 3, *shape)
    target = model if backbone_only else _TensorForward(model, task, shape)
    res = count_flops(target, (img,), by_module=by_module)
    if by_module and not backbone_only:
        res.by_module = {
            k[len('model.') :] if k.startswith('model.') else k: v
            for k, v in res.by_module.items()
            if k not in ('', 'model')
        }
    out = dict(
        task=task,
        shape=shape,
        params=res.params,
        flops=res.flops,
        by_operator=res.by_operator,
        unsupported=res.unsupported,
        uncounted_products=res.uncounted_products,
    )
    if by_module:
        out['by_module'] = res.by_module
    return out


def format_count(n: float, unit: str = '') -> str:
    """``31_400_000 -> '31.4M'``; ``230e9 -> '230.0G'``."""
    for div, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.2f}{suffix}{unit}'
    return f'{n}{unit}'
