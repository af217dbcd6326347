"""The attention families the reliability tests cover, as tiny Semantic-FPN shapes configs.

Each entry swaps the backbone of ``configs/shapes/fpn_r18_shapes.py`` for a tiny arch of one
family (one or two blocks per stage), so a training step takes well under a second on a CPU
core. A family is covered as soon as its backbone is registered: :func:`landed` filters the
table by what ``mmattn.models`` provides, so families that land later join automatically.
"""

import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHAPES_FPN = osp.join(REPO, 'configs', 'shapes', 'fpn_r18_shapes.py')

_PVT = dict(
    embed_dims=[16, 32, 48, 64],
    num_heads=[1, 2, 3, 4],
    mlp_ratios=[2, 2, 2, 2],
    depths=[1, 1, 1, 1],
    sr_ratios=[8, 4, 2, 1],
)
_SWIN = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
_CSWIN = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4])

#: family -> (backbone config, output channels per stage)
FAMILIES = {
    'agent-pvt': (dict(type='mmattn.AgentPVT', arch=_PVT), [16, 32, 48, 64]),
    # agent attention in stages 1-3, windows in 4 (the default layout of a custom arch)
    'agent-swin': (dict(type='mmattn.AgentSwin', arch=_SWIN), [16, 32, 64, 128]),
    'flatten-pvt': (dict(type='mmattn.FLattenPVT', arch=_PVT), [16, 32, 48, 64]),
    'flatten-swin': (dict(type='mmattn.FLattenSwin', arch=_SWIN), [16, 32, 64, 128]),
    'biformer': (
        dict(
            type='mmattn.BiFormer',
            arch=dict(embed_dims=[32, 64, 96, 128], depths=[1, 1, 2, 1], topks=[1, 4, 16, -2]),
        ),
        [32, 64, 96, 128],
    ),
    'shunted': (
        dict(
            type='mmattn.ShuntedTransformer',
            arch=dict(
                embed_dims=[16, 32, 64, 128],
                num_heads=[2, 2, 4, 4],
                mlp_ratios=[2, 2, 2, 2],
                sr_ratios=[8, 4, 2, 1],
                depths=[1, 2, 1, 1],
                num_convs=1,
            ),
        ),
        [16, 32, 64, 128],
    ),
    # global agent / focused linear attention in stages 1-2, CSWin stripes in 3, global in 4
    'agent-cswin': (dict(type='mmattn.AgentCSWin', arch=_CSWIN), [16, 32, 64, 128]),
    'flatten-cswin': (dict(type='mmattn.FLattenCSWin', arch=_CSWIN), [16, 32, 64, 128]),
    'ea-pvt': (
        dict(
            type='mmattn.EAPVT',
            arch=_PVT,
            attn_cfgs=dict(type='MultiHeadExternalAttention', num_slots=8),
        ),
        [16, 32, 48, 64],
    ),
}


def build_model(
    family: str,
    folder,
    extra: str = '',
    backbone_extra: str = '',
    model_extra: str = '',
    backbone_update: dict = None,
):
    """Build the segmentor of :func:`config_text` in-process (seeded, weights initialised)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    path = osp.join(str(folder), f'{family}_model.py')
    with open(path, 'w') as f:
        f.write(config_text(family, extra, backbone_extra, model_extra, backbone_update))
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.type == FAMILIES[family][0]['type'], cfg.model.backbone
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == FAMILIES[family][0]['type'].split('.')[1]
    return model


def landed() -> list:
    """Names of the families whose backbone is registered now."""
    import mmattn.models  # noqa: F401
    from mmattn.registry import MODELS

    return [
        name
        for name, (bb, _) in FAMILIES.items()
        if MODELS.get(bb['type'].split('.', 1)[1]) is not None
    ]


def config_text(
    family: str,
    extra: str = '',
    backbone_extra: str = '',
    model_extra: str = '',
    backbone_update: dict = None,
) -> str:
    """A config file body: the shapes Semantic FPN with ``family``'s tiny backbone."""
    backbone, channels = FAMILIES[family]
    backbone = dict(backbone, **(backbone_update or {}))
    # Spelled out key by key: the config parser does not expand ``**{...}`` inside dict().
    args = ', '.join(f'{k}={v!r}' for k, v in backbone.items())
    return (
        f'_base_ = {SHAPES_FPN!r}\n'
        f"custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)\n"
        f'model = dict(\n'
        f'    backbone=dict(_delete_=True, {args}{backbone_extra}),\n'
        f'    neck=dict(in_channels={channels!r}, out_channels=32),\n'
        f'    decode_head=dict(in_channels=[32, 32, 32, 32], channels=32{model_extra}))\n' + extra
    )
