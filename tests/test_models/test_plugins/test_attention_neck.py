"""AttentionNeck: plug-ins on chosen levels of MMDetection's necks, shapes unchanged.

Around CSPNeXtPAFPN (RTMDet-tiny's neck) every registered op leaves the neck's outputs exactly
as the plain neck's at init and changes them after a step; FPN, PAFPN and YOLOXPAFPN keep
their output shapes with plug-ins on inputs or outputs; the wrapped neck's type resolves from
an mmdet config's scope and from mmattn's own; bad levels are named.
"""

import mmdet.models  # noqa: F401, I001  (registers the necks)
import pytest
import torch
from mmengine.registry import DefaultScope

from mmattn.analysis.ops import attention_ops
from mmattn.models.plugins import AttentionNeck, build_foreign
from mmattn.registry import build_module

OPS = list(attention_ops())
CSPNEXT = dict(
    type='CSPNeXtPAFPN',
    in_channels=[96, 192, 384],
    out_channels=96,
    num_csp_blocks=1,
    expand_ratio=0.5,
)
#: RTMDet-tiny's C3-C5 of a 160 x 224 input (odd, non-square C5)
INPUTS = [(1, 96, 20, 28), (1, 192, 10, 14), (1, 384, 5, 7)]


def _maps(shapes=INPUTS):
    return [torch.randn(*s) for s in shapes]


def _det_build(cfg):
    """Build as an mmdet config does: mmdet's registry, mmdet's default scope."""
    from mmdet.registry import MODELS

    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg)


def _plain(cfg):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return build_foreign(cfg)


@pytest.mark.parametrize('name', OPS)
def test_every_op_around_cspnext_pafpn(name):
    torch.manual_seed(0)
    neck = _det_build(
        dict(
            type='mmattn.AttentionNeck',
            neck=CSPNEXT,
            plugin=dict(attn_cfg=dict(type=name)),
            map_sizes=(16, 8, 4),
        )
    )
    neck.init_weights()
    assert neck.levels == [0, 1, 2] and neck.in_channels == [96, 192, 384]
    plain = _plain(CSPNEXT)
    plain.init_weights()
    # a plain neck's checkpoint (a detector trained without plug-ins) loads into the wrapper
    missing, unexpected = neck.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith('plugins.') for k in missing)
    neck.eval(), plain.eval()
    x = _maps()
    with torch.no_grad():
        ref = plain(x)
        out = neck(x)
    assert [o.shape for o in out] == [r.shape for r in ref]
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    neck.train()
    opt = torch.optim.AdamW(neck.parameters(), lr=1e-2)
    sum(o.square().mean() for o in neck(x)).backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in neck.named_parameters()
        if n.endswith('gamma')
    )
    opt.step()
    neck.eval()
    with torch.no_grad():
        diff = max((o - r).abs().max().item() for o, r in zip(neck(x), ref))
    assert diff > 1e-3, f'{name}: the wrapped neck is still the plain neck after a step'


@pytest.mark.parametrize(
    'cfg,where,levels',
    [
        (
            dict(type='FPN', in_channels=[32, 64, 128, 256], out_channels=32, num_outs=5),
            'out',
            (3, 4),
        ),
        (
            dict(type='PAFPN', in_channels=[32, 64, 128, 256], out_channels=32, num_outs=4),
            'in',
            (-1,),
        ),
        (
            dict(type='YOLOXPAFPN', in_channels=[32, 64, 128], out_channels=32, num_csp_blocks=1),
            'out',
            None,
        ),
    ],
)
def test_output_shapes_of_other_necks(cfg, where, levels):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = AttentionNeck(
            cfg,
            plugin=dict(attn_cfg=dict(type='AgentAttention'), layer_scale_init=0.5),
            levels=levels,
            where=where,
        )
    plain = _plain(cfg)
    plain.load_state_dict({k[5:]: v for k, v in neck.state_dict().items() if k[:5] == 'neck.'})
    n = len(cfg['in_channels'])
    x = [torch.randn(1, c, 32 // 2**i, 48 // 2**i) for i, c in enumerate(cfg['in_channels'])]
    neck.eval(), plain.eval()
    with torch.no_grad():
        out, ref = neck(x), plain(x)
    assert len(out) == len(ref) and [o.shape for o in out] == [r.shape for r in ref]
    changed = [i for i, (o, r) in enumerate(zip(out, ref)) if not torch.equal(o, r)]
    if where == 'out':  # exactly the equipped output levels changed
        assert changed == sorted(neck.levels)
    else:
        assert neck.levels == [n - 1] and changed  # an input plug-in reaches the outputs


def test_neck_type_resolves_in_the_right_scope():
    """Unprefixed: in an mmdet config (mmdet's registry and scope) mmdet's FPN, although mmseg
    has an FPN too; in mmattn's own scope the one package that has it; ambiguous or unknown:
    named."""
    import mmseg.models  # noqa: F401  (an FPN in a second scope)

    fpn = dict(type='FPN', in_channels=[8, 16], out_channels=8, num_outs=2)
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert type(build_foreign(fpn)).__module__.startswith('mmdet.')
    neck = _det_build(
        dict(
            type='mmattn.AttentionNeck',
            neck=fpn,
            plugin=dict(attn_cfg=dict(type='SpatialReductionAttention')),
        )
    )
    assert type(neck.neck).__module__.startswith('mmdet.')
    with pytest.raises(KeyError, match='several scopes'):  # built in mmattn's scope: ambiguous
        build_module(
            dict(
                type='AttentionNeck',
                neck=fpn,
                plugin=dict(attn_cfg=dict(type='SpatialReductionAttention')),
            )
        )
    assert type(build_foreign(dict(fpn, type='mmseg.FPN'))).__module__.startswith('mmseg.')
    with pytest.raises(KeyError, match=r"'FPN' is registered in several scopes \(mmdet, mmseg\)"):
        build_foreign(fpn)  # no task scope: which FPN is meant?
    assert type(build_foreign(CSPNEXT)).__name__ == 'CSPNeXtPAFPN'  # only mmdet has it
    with pytest.raises(KeyError, match="'NoSuchNeck' is registered in no imported scope"):
        build_foreign(dict(type='NoSuchNeck'))


def test_bad_arguments_are_named():
    plugin = dict(attn_cfg=dict(type='AgentAttention'))
    with pytest.raises(ValueError, match="where must be 'in' or 'out'"):
        AttentionNeck(CSPNEXT, plugin, where='middle')
    with pytest.raises(ValueError, match=r'level 3 does not exist: the neck has 3 input levels'):
        AttentionNeck(CSPNEXT, plugin, levels=(0, 3))
    with pytest.raises(ValueError, match='name a level twice'):
        AttentionNeck(CSPNEXT, plugin, levels=(2, -1))
    with pytest.raises(ValueError, match='plugin must be one config dict or a list of 2'):
        AttentionNeck(CSPNEXT, [plugin], levels=(1, 2))
    with pytest.raises(ValueError, match='map_sizes has 1 entries for the 2 levels'):
        AttentionNeck(CSPNEXT, plugin, levels=(1, 2), map_sizes=(8,))
    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = AttentionNeck(CSPNEXT, plugin, levels=(2,))
    with pytest.raises(ValueError, match='plug-in sits on input level 2, but the input has 2'):
        neck(_maps()[:2])
