"""FLatten-PVT and FLatten-Swin: the PVT / Swin skeletons with focused linear attention.

Han et al., "FLatten Transformer: Vision Transformer using Focused Linear Attention", ICCV 2023
(arXiv 2308.00442); official code LeapLabTHU/FLatten-Transformer
(``models/flatten_pvt.py``, ``models/flatten_swin.py``, ``cfgs/flatten_{pvt,swin}_*.yaml``).

Both are the skeletons of ``pvt.py`` / ``swin.py`` with the paper's layout as the default
``attn_cfgs``; any other layout or op is a config away.
"""
from typing import Optional, Sequence, Union

from mmattn.registry import MODELS

from .pvt import PyramidVisionTransformerSkeleton
from .swin import SwinTransformerSkeleton

__all__ = ['FLattenPVT', 'FLattenSwin']


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

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_cfgs: Optional[Union[dict, Sequence]] = None,
                 **kwargs) -> None:
        super().__init__(arch=arch, attn_cfgs=attn_cfgs, **kwargs)

    def default_attn_cfgs(self):
        return dict(type='FocusedLinearAttention', sr_ratio=1)


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

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 attn_cfgs: Optional[Union[dict, Sequence]] = None,
                 **kwargs) -> None:
        super().__init__(arch=arch, attn_cfgs=attn_cfgs, **kwargs)

    def default_attn_cfgs(self):
        flatten, window = dict(type='FocusedLinearAttention'), dict(type='ShiftWindowMSA')
        return [flatten, flatten] + [window] * (self.num_stages - 2)
