"""mmattn modules build from mmdet's and mmseg's registries under their default scopes."""

import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmattn.registry import MODELS, build_module


@MODELS.register_module(name='ScopeProbeMixer', force=True)
class ScopeProbeMixer(nn.Module):
    """A token mixer registered only in the mmattn scope."""

    def __init__(self, embed_dims):
        super().__init__()
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x):
        return self.proj(x)


@MODELS.register_module(name='ScopeProbeBackbone', force=True)
class ScopeProbeBackbone(nn.Module):
    """Builds its sub-module from mmattn's registry, the way our backbones build attention."""

    def __init__(self, mixer=dict(type='ScopeProbeMixer'), embed_dims=8):
        super().__init__()
        self.mixer = build_module(mixer, embed_dims=embed_dims)

    def forward(self, x):
        return self.mixer(x)


def _scoped_build(scope, registry, cfg):
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_mmattn_module_builds_under_foreign_default_scope(scope):
    if scope == 'mmdet':
        from mmdet.registry import MODELS as FOREIGN
    else:
        from mmseg.registry import MODELS as FOREIGN
    DefaultScope.get_instance(f'test-{scope}', scope_name=scope)
    model = _scoped_build(scope, FOREIGN, dict(type='mmattn.ScopeProbeBackbone', embed_dims=8))
    assert isinstance(model, ScopeProbeBackbone)
    assert isinstance(model.mixer, ScopeProbeMixer)
    assert model(torch.zeros(2, 8)).shape == (2, 8)


def test_plain_build_under_foreign_scope_hits_the_trap():
    """Without the pinned scope, the name is looked up in mmdet's registry: the documented trap
    that build_module avoids."""
    from mmdet.registry import MODELS as MMDET_MODELS

    DefaultScope.get_instance('test-trap', scope_name='mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(KeyError):
            MMDET_MODELS.build(dict(type='ScopeProbeMixer', embed_dims=4))
        assert isinstance(build_module(dict(type='ScopeProbeMixer'), embed_dims=4), ScopeProbeMixer)


def test_unknown_type_lists_registered_names():
    with pytest.raises(KeyError, match='registered types are:.*ScopeProbeMixer'):
        build_module(dict(type='NoSuchAttention'))


def test_registry_is_child_of_mmengine_root():
    from mmengine.registry import MODELS as ROOT

    assert MODELS.parent is ROOT
    assert MODELS.scope == 'mmattn'
    assert ROOT.get('mmattn.ScopeProbeMixer') is ScopeProbeMixer


def test_own_registry_builds_in_own_scope_after_a_foreign_scope_ran():
    """A detection config having run in the process must not break mmattn's own builds."""
    DefaultScope.get_instance('test-after-mmdet', scope_name='mmdet')
    assert DefaultScope.get_current_instance().scope_name == 'mmdet'
    assert isinstance(MODELS.build(dict(type='ScopeProbeMixer', embed_dims=4)), ScopeProbeMixer)
    # and a prefixed foreign type still resolves through the root
    from mmdet.models.necks import FPN

    fpn = MODELS.build(dict(type='mmdet.FPN', in_channels=[4, 8], out_channels=4, num_outs=2))
    assert isinstance(fpn, FPN)
