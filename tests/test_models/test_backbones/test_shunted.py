"""ShuntedTransformer: shapes/strides, arch zoo, freezing, norm_eval, with_cp, init_cfg."""

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmattn.models.backbones.shunted import ShuntedTransformer
from mmattn.registry import MODELS

# Same structure as Shunted-S (two stem convs would be Shunted-B) at a fraction of the width.
TINY = dict(
    embed_dims=[16, 32, 64, 128],
    num_heads=[2, 2, 4, 4],
    mlp_ratios=[2, 2, 2, 2],
    sr_ratios=[8, 4, 2, 1],
    depths=[1, 2, 1, 1],
    num_convs=1,
)


def _tiny(**kw):
    torch.manual_seed(0)
    m = ShuntedTransformer(arch=TINY, **kw)
    m.init_weights()
    return m


@pytest.mark.parametrize('hw', [(224, 224), (511, 511), (112, 137)])
def test_strides_and_channels(hw):
    m = _tiny().eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *hw))
    assert len(outs) == 4
    size = hw
    # stem: 7x7/2 (pad 3) then 2x2/2; later stages: 3x3/2 (pad 1)
    size = tuple(((s - 1) // 2 + 1) // 2 for s in size)
    for i, o in enumerate(outs):
        if i:
            size = tuple((s - 1) // 2 + 1 for s in size)
        assert o.shape == (1, TINY['embed_dims'][i], *size)
        assert torch.isfinite(o).all()


def test_registered_full_shunted_t_forward():
    m = MODELS.build(dict(type='ShuntedTransformer', arch='tiny')).eval()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 128, 160))
    assert [o.shape[1] for o in outs] == [64, 128, 256, 512]
    assert [o.shape[2:] for o in outs] == [(32, 40), (16, 20), (8, 10), (4, 5)]


@pytest.mark.parametrize('arch,params', [('t', 11.04), ('small', 21.89), ('B', 39.10)])
def test_arch_zoo_param_counts(arch, params):
    # Official totals with the 1000-class head are 11.5 / 22.4 / 39.6 M (head = 0.513 M).
    m = ShuntedTransformer(arch=arch)
    n = sum(p.numel() for p in m.parameters()) / 1e6
    assert abs(n - params) < 0.01
    assert abs(n + 0.513 - {'t': 11.5, 'small': 22.4, 'B': 39.6}[arch]) < 0.06
    assert len(m.patch_embeds[0].convs) == 1 + m.arch['num_convs']


def test_bad_arch_messages():
    with pytest.raises(ValueError, match='tiny'):
        ShuntedTransformer(arch='huge')
    with pytest.raises(ValueError, match='missing keys'):
        ShuntedTransformer(arch=dict(embed_dims=[8] * 4))
    with pytest.raises(ValueError, match='even'):
        ShuntedTransformer(arch=dict(TINY, sr_ratios=[8, 3, 2, 1]))
    with pytest.raises(ValueError, match='out_indices'):
        ShuntedTransformer(arch=TINY, out_indices=(4,))


def test_out_indices_build_only_needed_stages():
    m = _tiny(out_indices=(1,)).eval()
    assert len(m.stages) == 2 and not hasattr(m, 'norm3')
    full = _tiny().eval()
    m.load_state_dict({k: v for k, v in full.state_dict().items() if k in m.state_dict()})
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        out = m(x)
        ref = full(x)
    assert len(out) == 1
    torch.testing.assert_close(out[0], ref[1])
    # every built parameter is used by the loss (DDP without find_unused_parameters)
    m.train()
    sum(o.sum() for o in m(x)).backward()
    assert all(p.grad is not None for p in m.parameters())


def test_frozen_stages():
    """frozen_stages=1 freezes the stem and stage 1 only (it used to freeze two stages)."""
    m = _tiny(frozen_stages=1)
    m.train()
    for mod in (m.patch_embeds[0], m.stages[0], m.norm1):
        assert not mod.training
        assert all(not p.requires_grad for p in mod.parameters())
    for mod in (m.patch_embeds[1], m.stages[1], m.norm2):
        assert mod.training and all(p.requires_grad for p in mod.parameters())
    m = _tiny(frozen_stages=0)
    m.train()
    assert all(not p.requires_grad for p in m.patch_embeds[0].parameters())
    assert all(p.requires_grad for p in m.stages[0].parameters())


def test_norm_eval():
    m = _tiny(norm_eval=True)
    m.train()
    bns = [mod for mod in m.modules() if isinstance(mod, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    assert m.stages[0][0].training
    m2 = _tiny(norm_eval=False)
    m2.train()
    assert all(mod.training for mod in m2.modules() if isinstance(mod, _BatchNorm))


def test_with_cp_same_output_and_grads():
    x = torch.randn(2, 3, 70, 90)
    # drop_path off: stochastic depth would draw different masks in the two runs
    ref, cpm = _tiny(drop_path_rate=0.0), _tiny(with_cp=True, drop_path_rate=0.0)
    cpm.load_state_dict(ref.state_dict())
    for m in (ref, cpm):
        m.train()
    outs = []
    for m in (ref, cpm):
        out = m(x)
        sum(o.square().mean() for o in out).backward()
        outs.append(out)
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for (n, p), (_, q) in zip(ref.named_parameters(), cpm.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_drop_path_schedule():
    m = _tiny(drop_path_rate=0.4)
    blocks = [b for stage in m.stages for b in stage]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    assert blocks[-1].drop_path.drop_prob == pytest.approx(0.4)


def test_init_cfg_pretrained(tmp_path):
    src = _tiny()
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    m = ShuntedTransformer(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    m.init_weights()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(m.state_dict()[k], v)
