"""The EANet decode head inside an mmseg EncoderDecoder (tiny dilated ResNet)."""

import torch


def _tiny_model():
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import mmattn.seg  # noqa: F401

    register_all_modules()
    norm_cfg = dict(type='BN', requires_grad=True)
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=[0.0, 0.0, 0.0],
                std=[1.0, 1.0, 1.0],
                size=(64, 64),
                pad_val=0,
                seg_pad_val=255,
            ),
            backbone=dict(
                type='ResNetV1c',
                depth=18,
                base_channels=8,
                stem_channels=16,
                dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1),
                contract_dilation=True,
                norm_cfg=norm_cfg,
            ),
            decode_head=dict(
                type='mmattn.EAHead',
                in_channels=64,
                in_index=3,
                ea_channels=32,
                num_slots=8,
                channels=16,
                num_classes=4,
                norm_cfg=norm_cfg,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
            ),
            train_cfg=dict(),
            test_cfg=dict(mode='whole'),
        )
    )


def test_head_structure_and_forward():
    from mmattn.models.attentions.external_attention import ExternalAttention

    torch.manual_seed(0)
    model = _tiny_model()
    head = model.decode_head
    assert isinstance(head.ea, ExternalAttention) and head.ea.num_slots == 8
    assert head.fc0.conv.kernel_size == (3, 3) and head.fc0.conv.bias is None
    assert head.fc1.conv.out_channels == 16 and head.conv_seg.in_channels == 16
    x = torch.randn(2, 3, 64, 80)
    model.eval()
    feats = model.extract_feat(x)
    assert feats[3].shape[-2:] == (8, 10)  # output stride 8
    with torch.no_grad():
        logits = head(feats)
        manual = head.conv_seg(head.fc1(head.ea(head.fc0(feats[3]))))
    assert logits.shape == (2, 4, 8, 10) and torch.equal(logits, manual)


def test_head_trains():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    torch.manual_seed(0)
    model = _tiny_model().train()
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, 64, 64)))
        samples.append(s)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    for n, p in model.decode_head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
