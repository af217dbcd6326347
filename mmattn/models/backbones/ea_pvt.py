"""EA-PVT: the shared PVT v1 skeleton with multi-head external attention as the token mixer.

A like-for-like comparison of external attention (Guo et al., arXiv 2105.02358, EAMLP form,
official ``EAMLP/models/transformer_block.py``) with the other ops on the same pyramid
(:class:`~mmattn.models.backbones.pvt.PyramidVisionTransformerSkeleton`). The paper releases
no hierarchical EA backbone and no ImageNet weights for one: EA-PVT trains from scratch (or
from an ImageNet run of your own); there is nothing to convert.
"""
from typing import Optional, Union

from mmattn.models.backbones.pvt import PyramidVisionTransformerSkeleton
from mmattn.registry import MODELS


@MODELS.register_module()
class EAPVT(PyramidVisionTransformerSkeleton):
    """PVT v1 pyramid whose every block mixes tokens with :class:`MultiHeadExternalAttention`.

    External attention needs no spatial reduction (its cost is linear in the tokens), so the
    skeleton's ``sr_ratios`` are not used. Each stage runs ``num_heads[i] * expand_ratio``
    heads of ``embed_dims[i] / num_heads[i]`` channels (PVT-tiny: 4/8/20/32 heads of 64).

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'m'``, ``'l'`` (or long names / a dict), the PVT
            v1 sizes of the skeleton. Defaults to ``'tiny'``.
        expand_ratio (int): Channel and head expansion of the op (official 4). Defaults to 4.
        num_slots (int): Memory slots per head (official 64). Defaults to 64.
        ea_cfg (dict, optional): Extra arguments of every op (e.g. ``eps``). Defaults to None.
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton` except ``attn_cfgs``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 expand_ratio: int = 4,
                 num_slots: int = 64,
                 ea_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if 'attn_cfgs' in kwargs:
            raise TypeError('EAPVT builds attn_cfgs itself; use the skeleton for custom ops')
        cfg = dict(type='MultiHeadExternalAttention', expand_ratio=expand_ratio,
                   num_slots=num_slots, **(ea_cfg or {}))
        super().__init__(arch=arch, attn_cfgs=cfg, **kwargs)
