"""FLatten-PVT and FLatten-Swin: the PVT / Swin skeletons with focused linear attention.

Han et al., "FLatten Transformer: Vision Transformer using Focused Linear Attention", ICCV 2023
(arXiv 2308.00442); official code LeapLabTHU/FLatten-Transformer
(``models/flatten_pvt.py``, ``models/flatten_swin.py``, ``cfgs/flatten_{pvt,swin}_*.yaml``).

Both are thin compositions: the skeletons of ``pvt.py`` / ``swin.py`` with
:class:`~mmattn.models.attentions.FocusedLinearAttention` in the linear (``'L'``) stages.
"""
from typing import Optional, Sequence, Union

from mmattn.registry import MODELS

from .pvt import PyramidVisionTransformerSkeleton
from .swin import SwinTransformerSkeleton


def _flatten_cfg(focusing_factor: float, kernel_size: int, extra: Optional[dict]) -> dict:
    return dict(type='FocusedLinearAttention', focusing_factor=focusing_factor,
                kernel_size=kernel_size, **(extra or {}))


@MODELS.register_module()
class FLattenPVT(PyramidVisionTransformerSkeleton):
    """FLatten-PVT (PVT v1 layout; official ``flatten_pvt_{tiny,small,medium,large}``).

    Linear stages (``'L'``) use focused linear attention on the full-resolution keys (the
    official configs set ``PVT_LA_SR_RATIOS = 1111``: no spatial reduction) with a positional
    encoding sized by the stage's map at ``pretrain_img_size`` and resized to the input.
    ``'S'`` stages use PVT's spatial-reduction softmax attention (``sr_ratios`` of the arch).
    Like the official model there are no output norms. The official ImageNet models use
    ``attn_types='LLLL'``.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'m'``, ``'l'`` (or ``'tiny'`` ... ``'large'``,
            or a dict; see the skeleton). Defaults to ``'tiny'``.
        attn_types (str): One letter per stage, ``'L'`` (FLatten) or ``'S'`` (softmax SRA).
            Defaults to ``'LLLL'``.
        focusing_factor (float): Focusing power ``p``. Defaults to 3.
        kernel_size (int): DWC kernel. Defaults to 5.
        la_sr_ratios (sequence[int]): Key/value reduction of the linear stages (official
            ``PVT_LA_SR_RATIOS``). Defaults to (1, 1, 1, 1).
        flatten_cfg (dict, optional): Extra arguments of every FLatten op (e.g.
            ``compute_order``). Defaults to None.
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton` except
            ``attn_cfgs`` (e.g. ``out_indices``, ``frozen_stages``, ``norm_eval``,
            ``with_cp``, ``drop_path_rate``, ``pretrain_img_size``, ``init_cfg``).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_types: str = 'LLLL',
                 focusing_factor: float = 3,
                 kernel_size: int = 5,
                 la_sr_ratios: Sequence[int] = (1, 1, 1, 1),
                 flatten_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if 'attn_cfgs' in kwargs:
            raise TypeError('FLattenPVT builds attn_cfgs itself; use the skeleton for custom ops')
        if len(la_sr_ratios) != len(attn_types):
            raise ValueError('la_sr_ratios needs one entry per stage')
        cfgs = []
        for letter, sr in zip(attn_types, la_sr_ratios):
            if letter == 'L':
                cfg = _flatten_cfg(focusing_factor, kernel_size, flatten_cfg)
                cfg['sr_ratio'] = int(sr)  # overrides the skeleton's softmax sr_ratios
                cfgs.append(cfg)
            elif letter == 'S':
                cfgs.append(dict(type='SpatialReductionAttention'))
            else:
                raise ValueError(f"attn_types letters are 'L' (FLatten) or 'S' (PVT softmax), "
                                 f'got {attn_types!r}')
        self.attn_types = attn_types
        super().__init__(arch=arch, attn_cfgs=cfgs, **kwargs)


@MODELS.register_module()
class FLattenSwin(SwinTransformerSkeleton):
    """FLatten-Swin (official ``FLattenSwinTransformer`` with ``WINDOW_SIZE: 56``, ``LLSS``).

    ``'L'`` blocks run focused linear attention over the whole stage map (the official window
    of 56 at 224 input equals the stage-1 map, and a window is clipped to the map in later
    stages), with no shift; their positional encoding is sized by the map at
    ``pretrain_img_size`` and resized to the input. ``'S'`` blocks are Swin's shifted-window
    softmax attention (window 7, shifted on odd blocks); the skeleton pads any ``H x W``.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (or long names / a dict).
            Defaults to ``'tiny'``.
        attn_types (str | list[str]): Block letters (see the Swin skeleton).
            Defaults to ``'LLSS'`` (all official models).
        focusing_factor (float): Focusing power ``p``. Defaults to 3.
        kernel_size (int): DWC kernel. Defaults to 5.
        window_size (int): Window of the ``'S'`` blocks (official: 7; 12 for the 384 model).
            Defaults to 7.
        flatten_cfg (dict, optional): Extra arguments of every FLatten op. Defaults to None.
        **kwargs: Arguments of :class:`SwinTransformerSkeleton` except ``attn_cfgs``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_types: Union[str, Sequence[str]] = 'LLSS',
                 focusing_factor: float = 3,
                 kernel_size: int = 5,
                 window_size: int = 7,
                 flatten_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if 'attn_cfgs' in kwargs:
            raise TypeError('FLattenSwin builds attn_cfgs itself; use the skeleton for custom '
                            'ops')
        table = dict(L=_flatten_cfg(focusing_factor, kernel_size, flatten_cfg),
                     S=dict(type='ShiftWindowMSA', window_size=window_size))
        super().__init__(arch=arch, attn_types=attn_types, attn_cfgs=table, **kwargs)
