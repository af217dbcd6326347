"""ONNX export: export-only paths equal the eager ops; exported files give PyTorch's results in
stock onnxruntime at the export size and at another size; bad input gets one ``error:`` line."""

import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmattn.deploy import (
    build_export_model,
    export_onnx,
    integral_scale_interpolate,
    matrix_adaptive_avg_pool2d,
    spread_seg_logits,
    verify_onnx,
)
from mmattn.deploy.onnx_export import export_wrapper
from mmattn.utils.cli import UserInputError

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'deployment', 'export_onnx.py')


@pytest.mark.parametrize(
    'mode,align', [('nearest', None), ('bilinear', False), ('bilinear', True), ('bicubic', False)]
)
@pytest.mark.parametrize('factor', [2, 4.0, (2, 3)])
def test_integral_scale_interpolate_equals_eager(mode, align, factor):
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    ref = F.interpolate(x, scale_factor=factor, mode=mode, align_corners=align)
    got = integral_scale_interpolate(x, scale_factor=factor, mode=mode, align_corners=align)
    assert got.shape == ref.shape
    assert torch.equal(got, ref)


def test_integral_scale_interpolate_passes_other_calls_through():
    x = torch.randn(1, 2, 9, 6)
    for kw in (
        dict(scale_factor=0.5),
        dict(scale_factor=1.5, mode='bilinear'),
        dict(size=(4, 11), mode='bilinear'),
    ):
        assert torch.equal(integral_scale_interpolate(x, **kw), F.interpolate(x, **kw))


def _load_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location('export_onnx_tool', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _error_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        _load_tool().main(argv)
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(err) == 1, err
    return err[0]


def test_bad_inputs_give_one_error_line(tmp_path, capsys):
    cfg = osp.join(ROOT, 'configs', 'shapes', 'fpn_flatten-pvt-nano_shapes.py')
    out = str(tmp_path / 'm.onnx')
    line = _error_line(capsys, [cfg, 'none', '--out', out, '--opset', '11'])
    assert '--opset 11 is not supported' in line
    no_model = tmp_path / 'no_model.py'
    no_model.write_text("default_scope = 'mmseg'\n")
    line = _error_line(capsys, [str(no_model), 'none', '--out', out])
    assert 'defines no `model`' in line
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'backbone.nothing': torch.zeros(1)}}, bad)
    line = _error_line(capsys, [cfg, str(bad), '--out', out])
    assert 'does not match' in line and 'missing' in line and 'unexpected' in line
    assert not osp.exists(out)


def _export_and_verify(tmp_path, config, mode, shapes):
    torch.manual_seed(0)
    if not isinstance(config, Config):
        config = Config.fromfile(osp.join(ROOT, config))
    model, task = build_export_model(config)
    if mode == 'end2end' and task == 'seg':
        spread_seg_logits(model, shapes[0])  # random weights: one class everywhere otherwise
    path = str(tmp_path / 'm.onnx')
    info = export_onnx(model, task, path, mode, shape=shapes[0])
    assert info['fixed'] == [], info['fixed']  # batch, H and W stay dynamic
    # only lower bounds from the deepest stage's size (>= 2 at stride 32), below the sizes here
    assert all(b.split()[1:3] == ['must', 'be'] for b in info['bounds']), info['bounds']
    assert not any('..' in b for b in info['bounds']), info['bounds']  # no upper bound
    assert all(int(b.split('>= ')[-1]) <= 64 for b in info['bounds']), info['bounds']
    # exported at batch 2: checked at batch 1 and 3
    return verify_onnx(model, task, path, mode, shapes[:1], batch=1) + verify_onnx(
        model, task, path, mode, shapes[1:], batch=3
    )


class _SizeRule(torch.nn.Module):
    def forward(self, img):
        return img * 2 if img.shape[2] > 40 else img


def test_size_rule_evaluated_at_export_is_reported(tmp_path):
    """A Python branch on the size survives in the file only as the export size's branch;
    the exporter keeps it as a range on the axis, which export_onnx reports."""
    info = export_onnx(_SizeRule(), 'backbone', str(tmp_path / 'r.onnx'), shape=(48, 64))
    assert info['fixed'] == [] and info['bounds'] == ['height must be >= 41'], info


@pytest.mark.timeout(900)
def test_segmentor_end2end_biformer(tmp_path):
    """BiFormer: top-k routing, region gathers, region padding that follows the size."""
    rows = _export_and_verify(
        tmp_path, 'configs/shapes/fpn_biformer-nano_shapes.py', 'end2end', [(128, 160), (160, 96)]
    )
    for row in rows:
        assert row['equal_pixels'] >= 0.995, row
        assert row['classes'] >= 3, row  # not one class everywhere (4 in the shapes set)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    'config',
    [
        # agent bias resizes, agent pooling, window padding, Swin's small-map shift rule (at
        # 160x96 stage 3 is 10x6: no shift in eager, where the 128x160 export shifted)
        'configs/shapes/fpn_agent-swin-tiny_shapes.py',
        'configs/shapes/fpn_flatten-pvt-nano_shapes.py',  # fp32 island, per-call order choice
        'configs/shapes/fpn_shunted-nano_shapes.py',  # multi-rate reductions
    ],
)
def test_tensor_mode_per_family(tmp_path, config):
    rows = _export_and_verify(tmp_path, config, 'tensor', [(128, 160), (160, 96)])
    for row in rows:
        assert row['max_rel_diff'] <= 1e-4, row


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    'config',
    [
        'configs/shapes/upernet_r50-bra_shapes.py',  # UperNet: PPM pooling, BRA plug-ins
        'configs/external_attention/fpn_ea-pvt-t_4xb4-40k_ade20k-512x512.py',  # EANet backbone
    ],
)
def test_tensor_mode_upernet_and_external_attention(tmp_path, config):
    rows = _export_and_verify(tmp_path, config, 'tensor', [(128, 160), (160, 128)])
    for row in rows:
        assert row['max_rel_diff'] <= 1e-4, row


@pytest.mark.timeout(900)
def test_tensor_mode_detector(tmp_path, retinanet_config):
    """RetinaNet with Agent-PVT-tiny: the five levels' class and box maps, flattened in order
    (160 x 192: the stride-128 level must be at least 2 x 2)."""
    cfg = retinanet_config(tmp_path, 'configs/shapes/mask-rcnn_agent-pvt-tiny_fpn_shapes.py')
    rows = _export_and_verify(tmp_path, cfg, 'tensor', [(160, 192), (192, 160)])
    for row in rows:
        assert row['max_rel_diff'] <= 1e-4, row


@pytest.mark.timeout(900)
def test_tensor_mode_detector_biformer_small_regions(tmp_path, retinanet_config):
    """RetinaNet with a narrow BiFormer at COCO's 16 regions per side, FPN from stage 2 with
    extra convs on the input, as configs/biformer/retinanet_*: at 160 x 192 the stride-16 map
    is 10 x 12, one token per region, and torch.export bounded H and W to <= 256 (a reshape of
    16 * r into (16, r) traced at r = 1); checked at 288 x 160, two-token regions."""
    cfg = retinanet_config(tmp_path, 'configs/shapes/fpn_biformer-nano_shapes.py')
    cfg.model.backbone.n_win = 16
    cfg.model.neck.update(start_level=1, add_extra_convs='on_input', num_outs=5)
    rows = _export_and_verify(tmp_path, cfg, 'tensor', [(160, 192), (288, 160)])
    for row in rows:
        assert row['max_rel_diff'] <= 1e-4, row


def test_two_stage_tensor_mode_is_one_error():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/shapes/mask-rcnn_r18_fpn_shapes.py'))
    model, task = build_export_model(cfg)
    with pytest.raises(UserInputError, match='use --mode end2end'):
        export_wrapper(model, task, 'tensor', (128, 160))


@pytest.mark.parametrize(
    'hw,out',
    [((7, 5), (3, 3)), ((12, 10), (4, 4)), ((9, 16), (7, 5)), ((5, 6), 2), ((8, 9), (None, 4))],
)
def test_matrix_adaptive_avg_pool2d_equals_eager(hw, out):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    ref = F.adaptive_avg_pool2d(x, out)
    got = matrix_adaptive_avg_pool2d(x, out)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    'factor,mode,align', [(2, 'bilinear', False), (4, 'nearest', None), (1.5, 'bilinear', False)]
)
def test_mmseg_upsample_forward_equals_eager(factor, mode, align):
    from mmseg.models.utils import Upsample

    from mmattn.deploy.onnx_export import _export_patches

    up = Upsample(scale_factor=factor, mode=mode, align_corners=align)
    x = torch.randn(1, 2, 5, 7, dtype=torch.float64)
    ref = up(x)
    with _export_patches():
        got = up(x)
    assert Upsample.forward.__name__ == 'forward'  # restored
    assert torch.equal(got, ref)


def test_seg_end2end_wrapper_equals_test_step():
    """The end2end wrapper in eager mode gives test_step's label map, channel swap included
    (mmseg's preprocessor names its flag `channel_conversion`: the wrapper once read
    mmengine's `_channel_conversion`, never swapped, and 28% of Agent-PVT-T's pixels differed)."""
    from mmattn.deploy.onnx_export import SegEnd2End, _test_image, torch_reference

    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/shapes/fpn_r18_shapes.py'))
    model, task = build_export_model(cfg)
    spread_seg_logits(model, (96, 128))
    img = _test_image(2, (96, 128), torch.Generator().manual_seed(0))
    ref = torch_reference(model, task, 'end2end', img)[0]
    assert len(set(ref.ravel().tolist())) >= 2  # not one class everywhere
    wrapper = SegEnd2End(model).eval()
    assert wrapper.swap
    with torch.no_grad():
        assert (wrapper(img).numpy() == ref).mean() >= 0.999
        wrapper.swap = False
        assert (wrapper(img).numpy() == ref).mean() < 0.99
