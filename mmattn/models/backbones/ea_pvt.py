"""EA-PVT: the shared PVT v1 skeleton with multi-head external attention as the token mixer.

A like-for-like comparison of external attention (Guo et al., arXiv 2105.02358, EAMLP form,
official ``EAMLP/models/transformer_block.py``) with the other ops on the same pyramid
(:class:`~mmattn.models.backbones.pvt.PyramidVisionTransformerSkeleton`). The paper releases
no hierarchical EA backbone and no ImageNet weights for one: EA-PVT trains from scratch (or
from an ImageNet run of your own); there is nothing to convert.
"""

from mmattn.registry import MODELS

from .pvt import PyramidVisionTransformerSkeleton

__all__ = ['EAPVT']


@MODELS.register_module()
class EAPVT(PyramidVisionTransformerSkeleton):
    """PVT v1 pyramid whose every block mixes tokens with :class:`MultiHeadExternalAttention`.

    External attention needs no spatial reduction (its cost is linear in the tokens) and does
    not declare ``sr_ratio``, so the arch's ``sr_ratios`` are not used by it. With the default
    op each stage runs ``num_heads[i] * expand_ratio`` heads of ``embed_dims[i] / num_heads[i]``
    channels (PVT-tiny: 4/8/20/32 heads of 64), ``expand_ratio=4`` and ``num_slots=64`` as the
    official EAMLP; set them in ``attn_cfgs``.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'m'``, ``'l'`` (or long names / a dict), the PVT
            v1 sizes of the skeleton. Defaults to ``'tiny'``.
        attn_cfgs (dict | list, optional): The op of every block. Defaults to None:
            ``dict(type='MultiHeadExternalAttention')`` (expand ratio 4, 64 slots).
        **kwargs: Arguments of :class:`PyramidVisionTransformerSkeleton`.
    """

    def default_attn_cfgs(self):
        return dict(type='MultiHeadExternalAttention')
