"""BiFormer backbone: arch zoo, strides/channels on square and odd inputs, freezing,
norm_eval, with_cp, the official head-count quirk of the last stage."""

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmattn.models.attentions.bi_level_routing_attention import (
    BiLevelRoutingAttention,
    GlobalAttentionLePE,
)
from mmattn.models.backbones.biformer import BiFormer
from mmattn.registry import MODELS

# A narrow BiFormer with the real layout (BRA stages + global last stage) for fast tests.
TINY = dict(embed_dims=[32, 64, 96, 128], depths=[1, 1, 2, 1], topks=[1, 4, 16, -2])


def test_arch_zoo_and_param_counts():
    """Backbone params = official classifier params - head - final BN + 4 output LNs."""
    paper = dict(tiny=13.1, small=25.5, base=56.8)  # M, BiFormer paper Table 1
    for arch, dims in (('tiny', 512), ('small', 512), ('base', 768)):
        model = BiFormer(arch)
        n = sum(p.numel() for p in model.parameters())
        as_classifier = n - 2 * sum(model.embed_dims) + dims * 1000 + 1000 + 2 * dims
        assert round(as_classifier / 1e6, 1) == paper[arch]
    assert BiFormer('s').embed_dims == BiFormer('small').embed_dims
    with pytest.raises(ValueError, match='tiny'):
        BiFormer('huge')


def test_heads_and_routing_per_stage():
    model = BiFormer('base', n_win=16)
    attns = [model.stages[i][0].attn for i in range(4)]
    assert all(isinstance(a, BiLevelRoutingAttention) for a in attns[:3])
    assert [a.num_heads for a in attns[:3]] == [3, 6, 12]  # qk_dims // 32
    assert [a.topk for a in attns[:3]] == [1, 4, 16]
    assert all(a.n_win == 16 for a in attns[:3])
    assert attns[0].scale == pytest.approx(96**-0.5)
    # last stage: global attention built without a head count -> class default 8
    assert isinstance(attns[3], GlobalAttentionLePE) and attns[3].num_heads == 8


@pytest.mark.parametrize('hw', [(224, 224), (112, 137), (511, 511)])
def test_strides_and_channels(hw):
    torch.manual_seed(0)
    model = BiFormer(TINY, n_win=7).eval()
    if hw[0] > 300:  # keep the big input cheap: two levels only
        model = BiFormer(TINY, n_win=7, out_indices=(0, 1)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    h, w = hw
    for i, out in enumerate(outs):
        s = 4 * 2**i
        exp = (h, w)
        for _ in range(i + 2):
            exp = ((exp[0] + 1) // 2, (exp[1] + 1) // 2)
        assert out.shape == (1, TINY['embed_dims'][i], *exp), (i, s)
        assert torch.isfinite(out).all()


def test_out_indices_and_registry():
    model = MODELS.build(dict(type='BiFormer', arch=TINY, out_indices=(1, 3)))
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 128]


def test_frozen_stages_and_norm_eval():
    model = BiFormer(TINY, frozen_stages=2, norm_eval=True)
    model.train()
    for p in (
        list(model.stem.parameters())
        + list(model.stages[1].parameters())
        + list(model.downsamples[0].parameters())
        + list(model.norm1.parameters())
    ):
        assert not p.requires_grad
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert all(p.requires_grad for p in model.downsamples[1].parameters())
    assert not model.stages[0].training and model.stages[2].training
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    # norm_eval: running stats untouched by a training step
    before = model.downsamples[2].bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.downsamples[2].bn.running_mean)
    model = BiFormer(TINY, norm_eval=False).train()
    assert all(m.training for m in model.modules() if isinstance(m, _BatchNorm))


def test_with_cp_same_output_and_grads():
    torch.manual_seed(0)
    ref = BiFormer(TINY, n_win=4, drop_path_rate=0.0).train()
    cp = BiFormer(TINY, n_win=4, with_cp=True).train()
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 60, 76, requires_grad=True)
    out_r, out_c = ref(x), cp(x)
    sum(o.sum() for o in out_r).backward()
    sum(o.sum() for o in out_c).backward()
    for a, b in zip(out_r, out_c):
        assert torch.allclose(a, b, atol=1e-5)
    for (name, p), q in zip(ref.named_parameters(), cp.parameters()):
        assert p.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-4), name


def test_drop_path_and_init():
    model = BiFormer(TINY, drop_path_rate=0.3)
    rates = [
        b.drop_path.drop_prob
        for s in model.stages
        for b in s
        if not isinstance(b.drop_path, torch.nn.Identity)
    ]
    assert rates[-1] == pytest.approx(0.3) and rates == sorted(rates)
    model.init_weights()
    assert model.stages[0][0].mlp.fc1.bias.abs().sum() == 0
    assert model.stages[0][0].attn.qkv.weight.std() < 0.03
