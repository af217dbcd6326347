"""Every backbone hands its maps to the neck in the standard NCHW layout, and Mask R-CNN's RoI
features from an attention backbone are the ones RoIAlign computes on standard-layout maps.

Why: a map made from tokens by a view is channels-last in memory. mmcv 2.1's compiled CPU
``RoIAlign`` reads its input as NCHW without checking the strides, so on such maps (and on every
FPN level, since convolutions keep the layout) the RoI features were spatially scrambled and
the attention detectors could not learn on the shapes data while ResNet-18 could.
"""

import os.path as osp

import pytest
import torch
from reliability_families import FAMILIES, REPO, landed


@pytest.mark.parametrize('family', landed())
def test_backbone_outputs_are_standard_layout(family):
    import mmattn.models  # noqa: F401
    from mmattn.registry import MODELS

    cfg = dict(FAMILIES[family][0])
    backbone = MODELS.build(dict(cfg, type=cfg['type'].split('.', 1)[1])).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, 64, 96))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        assert out.dim() == 4 and out.shape[0] == 2, (family, i, out.shape)
        assert out.is_contiguous(), (
            f'{family} output {i} has strides {out.stride()} for shape {tuple(out.shape)}: '
            'not contiguous NCHW'
        )


def test_mask_rcnn_roi_features_equal_the_standard_layout_reference():
    """RoI features of the Agent-PVT shapes detector equal RoIAlign on contiguous FPN maps."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'shapes', 'mask-rcnn_agent-pvt-tiny_fpn_shapes.py')
    )
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 128, 128, generator=g)
    # boxes of the shapes' sizes (16-60 px), all mapped to P2, the finest level
    xy = torch.rand(6, 2, generator=g) * 60
    wh = 16 + torch.rand(6, 2, generator=g) * 44
    rois = torch.cat([torch.tensor([0, 0, 0, 1, 1, 1.0])[:, None], xy, xy + wh], dim=1)
    extractor = model.roi_head.bbox_roi_extractor
    with torch.no_grad():
        feats = model.extract_feat(x)[: extractor.num_inputs]
        got = extractor(feats, rois)
        want = extractor(tuple(f.contiguous() for f in feats), rois)
    assert got.abs().max() > 1e-3  # real features, not an all-zero map
    torch.testing.assert_close(got, want, rtol=0, atol=0)
