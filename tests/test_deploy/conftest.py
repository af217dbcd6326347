"""Shared configs of the deployment tests."""

import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_RETINANET = f"""
_base_ = [
    '{ROOT}/configs/_base_/models/retinanet_fpn.py',
    '{ROOT}/configs/_base_/datasets/shapes_instance.py',
    '{ROOT}/configs/_base_/default_runtime_det.py',
]
model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN', requires_grad=True),
                  style='pytorch', init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    bbox_head=dict(num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2),
)
"""


@pytest.fixture(scope='module')
def retinanet_config():
    """``build(tmp_dir, backbone_from=None)``: a RetinaNet on the shapes set (mmdet's RetinaNet
    test_cfg) with a narrow ResNet-18, or with the backbone and neck inputs of the config
    ``backbone_from``."""

    def build(tmp, backbone_from=None):
        path = tmp / 'retinanet_shapes.py'
        path.write_text(_RETINANET)
        cfg = Config.fromfile(str(path))
        if backbone_from is not None:
            other = Config.fromfile(osp.join(ROOT, backbone_from))
            cfg.model.backbone = other.model.backbone
            cfg.model.neck.in_channels = other.model.neck.in_channels
        return cfg

    return build
