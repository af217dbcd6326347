"""Mixed precision: no NaN/Inf in losses or gradients for any family, ops' fp32 islands hold.

Training steps run through :class:`mmattn.CPUAmpOptimWrapper` (what ``tools/train.py --amp``
selects without CUDA) on the Semantic-FPN shapes model with each family's tiny backbone, at the
normal input scale and with inputs scaled x30 (images far outside the normalised range, the
case that breaks a linear-attention normaliser computed in half precision). One run goes
through ``tools/train.py --amp`` as a user would.
"""

import glob
import json
import math
import os.path as osp

import pytest
import torch
from reliability_families import FAMILIES, REPO, build_model, config_text, landed

STEPS = 2
SCALES = (1.0, 30.0)


def _batch(batch_size=2, size=64, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        s = SegDataSample(
            metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size))
        )
        s.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, size, size), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_amp_training_steps_finite(family, tmp_path):
    from mmengine.optim import build_optim_wrapper

    import mmattn.engine  # noqa: F401  (registers CPUAmpOptimWrapper)

    assert family in landed()
    model = build_model(family, tmp_path)
    model.train()
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='mmattn.CPUAmpOptimWrapper',
            dtype='bfloat16',
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
        ),
    )
    bad = []
    for scale in SCALES:
        for step in range(STEPS):
            data = model.data_preprocessor(_batch(seed=step), training=True)
            data['inputs'] = data['inputs'] * scale
            with wrapper.optim_context(model):
                losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)
            wrapper.backward(loss)
            if not math.isfinite(loss.item()):
                bad.append(f'loss x{scale} step {step}: {loss.item()}')
            for name, p in model.named_parameters():
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    bad.append(f'grad {name} x{scale} step {step}')
            unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not unused, f'{family}: parameters without gradient: {unused[:5]}'
            wrapper.step()
            wrapper.zero_grad()
    print(f'{family}: {len(SCALES) * STEPS} bf16 steps, non-finite values: {len(bad)}')
    assert not bad, f'{family} under bf16 autocast: {bad[:10]}'


#: Half of a unit in the last place, relative (mantissa bits 7 / 10), and half the smallest
#: subnormal step (absolute, for results below the normal range).
HALF_ULP = {torch.bfloat16: (2.0**-8, 2.0**-134), torch.float16: (2.0**-11, 2.0**-25)}


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_linear_attention_fp32_islands(dtype):
    """FLatten and external attention under half-precision autocast, at the realistic input
    scale (unit variance) and on huge activations (x200).

    The normalisers (sums over thousands of tokens) would overflow float16 (max 65504) and lose
    all precision in bfloat16; computed in fp32 with autocast off they stay finite and match the
    fp32 result.

    NOTE: tolerance = 4 half-ulps relative (bf16 2^-6 = 1.6%, fp16 2^-9 = 0.2%) on the
    whole output: the op's linears still run in half precision (input, weights and output each
    rounded once), so a few half-ulps of error are expected; measured 0.34-0.68% (bf16) and
    0.04-0.10% (fp16). A normaliser computed in half precision is off by far more, or NaN.
    """
    from mmattn.models.attentions.external_attention import MultiHeadExternalAttention
    from mmattn.models.attentions.focused_linear_attention import FocusedLinearAttention

    torch.manual_seed(0)
    hw = (48, 40)  # 1920 tokens, not a square
    tol = 4 * HALF_ULP[dtype][0]
    for scale in (1.0, 200.0):
        x = torch.randn(2, hw[0] * hw[1], 32) * scale
        for op in (
            FocusedLinearAttention(32, num_heads=2).eval(),
            MultiHeadExternalAttention(32, num_heads=2, num_slots=16).eval(),
        ):
            ref = op(x, hw)
            with torch.autocast('cpu', dtype=dtype):
                out = op(x, hw)
            name = type(op).__name__
            assert torch.isfinite(out).all(), f'{name}: non-finite output under {dtype}'
            err = ((out.float() - ref).norm() / ref.norm()).item()
            assert err < tol, f'{name} x{scale}: relative error {err:.3g} under {dtype}'


def _within_half_ulp(out: torch.Tensor, ref: torch.Tensor, dtype) -> torch.Tensor:
    rtol, atol = HALF_ULP[dtype]
    # 2^-20 of slack: an fp32 path that rounds differently from ``ref`` (e.g. another summation
    # order) may land on the other side of a half-precision rounding boundary.
    return (out.float() - ref).abs() <= (rtol + 2.0**-20) * ref.abs() + atol


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_double_normalise_rounds_once(dtype):
    """The EA normaliser under autocast, at the scale of real logits (std 3, 1920 tokens).

    NOTE: computed in fp32 and cast back once, each value is within half an ulp of the fp32
    result on the same half-precision logits: 2^-8 relative in bf16, 2^-11 in fp16 (+ half the
    subnormal step). The same formula evaluated in half precision (negative control below)
    rounds the softmax, the slot sums and the quotient separately, and underflows in fp16
    (softmax values over 1920 tokens are ~1e-4 to 1e-9), so it breaks this bound.
    """
    from mmattn.models.attentions.external_attention import double_normalise

    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 1920, 16, generator=g) * 3).to(dtype)
    with torch.autocast('cpu', dtype=dtype):
        attn = double_normalise(logits, token_dim=1, slot_dim=2)
    assert attn.dtype == dtype
    ref = double_normalise(logits.float(), token_dim=1, slot_dim=2)
    assert ref.dtype == torch.float32 and 0.02 < ref.std().item()  # not one-hot, not constant
    ok = _within_half_ulp(attn, ref, dtype)
    assert ok.all(), f'{(~ok).sum().item()} values off by more than half an ulp'
    # Negative control: without the fp32 island the comparison fails.
    naive = logits.softmax(dim=1)
    naive = naive / (1e-9 + naive.sum(dim=2, keepdim=True))
    assert naive.dtype == dtype
    assert not _within_half_ulp(naive, ref, dtype).all()


def test_train_py_amp_flag(shapes_data, tmp_path, tool):
    """``tools/train.py --amp`` on CPU: bf16 autocast, finite losses over a few iterations."""
    family = landed()[0]
    cfg = tmp_path / 'amp.py'
    cfg.write_text(
        config_text(
            family,
            extra=(
                'train_cfg = dict(max_iters=4, val_interval=1000)\n'
                'train_dataloader = dict(batch_size=2)\n'
                'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'
                'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))\n'
            ),
        )
    )
    work = tmp_path / 'work'
    proc = tool('train.py', cfg, '--work-dir', work, '--amp')
    assert 'CPUAmpOptimWrapper' in (proc.stdout + proc.stderr)
    losses = []
    for path in glob.glob(str(work / '*' / 'vis_data' / 'scalars.json')):
        with open(path) as f:
            losses += [json.loads(line)['loss'] for line in f if '"loss"' in line]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses), losses
    assert osp.isfile(work / 'iter_4.pth')


def test_train_py_amp_flag_mask_rcnn(shapes_data, tmp_path, tool):
    """``--amp`` on a CPU detector: mmcv's NMS / RoIAlign have no bf16 kernels, so train.py
    autocasts the backbone and neck only; Mask R-CNN with an attention backbone then trains."""
    work = tmp_path / 'work'
    tool(
        'train.py',
        osp.join(REPO, 'configs/shapes/mask-rcnn_agent-pvt-tiny_fpn_shapes.py'),
        '--work-dir',
        work,
        '--amp',
        '--cfg-options',
        'train_cfg.max_iters=3',
        'train_cfg.val_interval=1000',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1000',
    )
    from mmengine.config import Config

    dumped = Config.fromfile(str(work / 'mask-rcnn_agent-pvt-tiny_fpn_shapes.py'))
    assert dumped.optim_wrapper.type == 'mmattn.CPUAmpOptimWrapper'
    assert tuple(dumped.optim_wrapper.autocast_modules) == ('backbone', 'neck')
    losses = []
    for path in glob.glob(str(work / '*' / 'vis_data' / 'scalars.json')):
        with open(path) as f:
            losses += [json.loads(line)['loss'] for line in f if '"loss"' in line]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), losses


class _Detector(torch.nn.Module):
    """backbone -> neck -> head, where the head insists on fp32 input (like mmcv's CPU NMS)."""

    def __init__(self, fail=False):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 4)
        self.neck = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 1)
        self.fail, self.seen = fail, {}

    def forward(self, x):
        feats = self.backbone(x)
        self.seen['backbone'] = feats.dtype
        if self.fail:
            raise RuntimeError('boom')
        feats = self.neck(feats)
        self.seen['neck'] = feats.dtype
        self.seen['head_autocast'] = torch.is_autocast_enabled('cpu')
        return self.head(feats)


def _wrapper(**kwargs):
    from mmattn.engine.optim_wrapper import CPUAmpOptimWrapper

    model = _Detector(**kwargs.pop('model', {}))
    return model, CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs
    )


def test_cpu_amp_autocast_modules_scope():
    model, wrapper = _wrapper(autocast_modules=('backbone', 'neck', 'absent'))
    raw = []  # registered first, so it sees the output before the wrapper's cast-back hook
    model.backbone.register_forward_hook(lambda mod, args, out: raw.append(out.dtype))
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert raw == [torch.bfloat16]
    # inside the scoped modules the matmuls ran in bf16; what leaves them is fp32 again
    assert model.seen == {'backbone': torch.float32, 'neck': torch.float32, 'head_autocast': False}
    assert out.dtype == torch.float32
    assert not torch.is_autocast_enabled('cpu')
    assert len(model.backbone._forward_hooks) == 1 and not model.backbone._forward_pre_hooks
    # the whole-model default: everything under autocast, bf16 out
    model, wrapper = _wrapper()
    with wrapper.optim_context(model):
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16


def test_cpu_amp_autocast_modules_unwinds_after_an_error_and_names_a_mismatch():
    model, wrapper = _wrapper(autocast_modules=['backbone'], model=dict(fail=True))
    with pytest.raises(RuntimeError, match='boom'):
        with wrapper.optim_context(model):
            model(torch.randn(2, 4))
    assert not torch.is_autocast_enabled('cpu')
    assert not model.backbone._forward_hooks and not model.backbone._forward_pre_hooks
    model, wrapper = _wrapper(autocast_modules='encoder')
    with pytest.raises(ValueError, match=r"has none of autocast_modules=\['encoder'\]"):
        with wrapper.optim_context(model):
            pass
    with pytest.raises(TypeError, match=r'autocast_modules must be sub-module names.*got 5'):
        _wrapper(autocast_modules=5)
