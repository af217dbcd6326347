"""FLatten-PVT and FLatten-Swin: the PVT / Swin skeletons with focused linear attention.

Han et al., "FLatten Transformer: Vision Transformer using Focused Linear Attention", ICCV 2023
(arXiv 2308.00442); official code LeapLabTHU/FLatten-Transformer
(``models/flatten_pvt.py``, ``models/flatten_pvt_v2.py``, ``models/flatten_swin.py``,
``cfgs/flatten_{pvt,pvt_v2,swin}_*.yaml``).

All three are the skeletons of ``pvt.py`` / ``swin.py`` (FLatten-PVTv2: the PVT skeleton with
its PVT v2 options) with the paper's layout as the default ``attn_cfgs``; any other layout or
op is a config away.
"""

from typing import Optional, Sequence, Union

from mmattn.models.layers.weight_init import conv_fan_out_init
from mmattn.registry import MODELS

from .pvt import PyramidVisionTransformerSkeleton
from .swin import SwinTransformerSkeleton

__all__ = ['FLattenPVT', 'FLattenPVTv2', 'FLattenSwin']


@MODELS.register_module()
class FLattenPVT(PyramidVisionTransformerSkeleton):
    """FLatten-PVT (PVT v1 layout; official ``flatten_pvt_{tiny,small,medium,large}``).

    Every block uses focused linear attention on the full-resolution keys: the official
    configs set ``PVT_LA_SR_RATIOS = 1111``, so the default op config says ``sr_ratio=1``
    (an op config without it gets the arch's ``sr_ratios``, 8/4/2/1, like any PVT op). Its
    positional encoding is sized by the stage's map at ``pretrain_img_size`` and resized to
    the input. Like the official model there are no output norms.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'m'``, ``'l'`` (or ``'tiny'`` ... ``'large'``,
            or a dict; see the skeleton). Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None:
            ``dict(type='FocusedLinearAttention', sr_ratio=1)`` (focusing factor 3, kernel 5).
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton` (e.g.
            ``out_indices``, ``frozen_stages``, ``norm_eval``, ``with_cp``,
            ``drop_path_rate``, ``pretrain_img_size``, ``init_cfg``).
    """

    def default_attn_cfgs(self):
        return dict(type='FocusedLinearAttention', sr_ratio=1)


_PVTV2_ARCHS = {
    name: dict(
        embed_dims=dims,
        num_heads=[1, 2, 5, 8],
        mlp_ratios=[8, 8, 4, 4],
        depths=depths,
        sr_ratios=[8, 4, 2, 1],
    )
    for name, dims, depths in [
        ('b0', [32, 64, 160, 256], [2, 2, 2, 2]),
        ('b1', [64, 128, 320, 512], [2, 2, 2, 2]),
        ('b2', [64, 128, 320, 512], [3, 4, 6, 3]),
        ('b3', [64, 128, 320, 512], [3, 4, 18, 3]),
        ('b4', [64, 128, 320, 512], [3, 8, 27, 3]),
    ]
}


@MODELS.register_module()
class FLattenPVTv2(PyramidVisionTransformerSkeleton):
    """FLatten-PVTv2 (PVT v2 layout; official ``flatten_pvt_v2_b{0..4}``).

    The PVT skeleton with its PVT v2 options on: overlapping patch embeddings (7x7 stride 4,
    then 3x3 stride 2, padding ``k // 2``, LayerNorm eps 1e-5), no absolute position
    embedding, the convolutional FFN (``fc1`` -> depthwise 3x3 -> GELU -> ``fc2``) and a
    LayerNorm (eps 1e-6) after each stage, on the main path and so on every output. Every
    block uses focused linear attention on the full-resolution keys: the official configs set
    ``ATTN_TYPE = LLLL`` and ``PVT_LA_SR_RATIOS = 1111`` (``linear=False``), so the default op
    config says ``sr_ratio=1`` (focusing factor 3, kernel 5); the arch's ``sr_ratios``
    (8/4/2/1) are what an op config without ``sr_ratio`` (e.g. PVT v2's spatial-reduction
    attention) gets. The op's positional encoding is sized by the stage map at
    ``pretrain_img_size`` and resized to the input (the official model runs at that size only).

    Sizes (official): b0 32-64-160-256 channels, b1-b4 64-128-320-512; heads 1-2-5-8; MLP
    ratios 8-8-4-4; depths b0/b1 2-2-2-2, b2 3-4-6-3, b3 3-4-18-3, b4 3-8-27-3.

    Args:
        arch (str | dict): ``'b0'`` ... ``'b4'`` or a dict (see the skeleton).
            Defaults to ``'b0'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None:
            ``dict(type='FocusedLinearAttention', sr_ratio=1)``.
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton` (e.g.
            ``out_indices``, ``frozen_stages``, ``with_cp``, ``drop_path_rate``,
            ``pretrain_img_size``, ``init_cfg``); the PVT v2 options default to the official
            layout (``patch_kernel_sizes=(7, 3, 3, 3)``, ``use_abs_pos_embed=False``,
            ``use_conv_ffn=True``, ``norm_after_stage=True``).
    """

    arch_zoo = _PVTV2_ARCHS

    def __init__(
        self,
        arch: Union[str, dict] = 'b0',
        attn_cfgs: Optional[Union[dict, Sequence]] = None,
        **kwargs,
    ) -> None:
        for key, value in dict(
            patch_kernel_sizes=(7, 3, 3, 3),
            use_abs_pos_embed=False,
            use_conv_ffn=True,
            norm_after_stage=True,
        ).items():
            kwargs.setdefault(key, value)
        super().__init__(arch=arch, attn_cfgs=attn_cfgs, **kwargs)

    def default_attn_cfgs(self):
        return dict(type='FocusedLinearAttention', sr_ratio=1)

    def default_init(self) -> None:
        """Official PVT v2 init: the skeleton's (trunc-normal linears, unit LayerNorms) and
        fan-out normal convs with zero bias."""
        super().default_init()
        conv_fan_out_init(self)


@MODELS.register_module()
class FLattenSwin(SwinTransformerSkeleton):
    """FLatten-Swin (official ``FLattenSwinTransformer`` with ``WINDOW_SIZE: 56``, ``LLSS``).

    Default layout (all official models): stages 1-2 focused linear attention over the whole
    stage map (the official window of 56 at 224 input equals the stage-1 map, and a window is
    clipped to the map in later stages), with no shift, its positional encoding sized by the
    map at ``pretrain_img_size`` and resized to the input; stages 3-4 Swin's shifted-window
    softmax attention (``window_size``, shifted on odd blocks).

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None: the
            official layout above.
        **kwargs: Arguments of :class:`SwinTransformerSkeleton` (e.g. ``window_size``:
            official 7, 12 for the 384 model).
    """

    def default_attn_cfgs(self):
        flatten, window = dict(type='FocusedLinearAttention'), dict(type='ShiftWindowMSA')
        return [flatten, flatten] + [window] * (self.num_stages - 2)
