"""The EANet decode head (Guo et al., arXiv 2105.02358; official code: MenghaoGuo/EANet,
``model_torch.py``), as an mmseg decode head registered in the ``mmattn`` scope.

Layout of the official network after the dilated ResNet: 3x3 conv (in -> 512) + norm + ReLU,
the single-head external attention module, 3x3 conv (512 -> 256) + norm + ReLU, dropout 0.1,
1x1 classifier. Here the last two steps are mmseg's ``cls_seg`` (dropout + ``conv_seg``).
"""

from typing import List

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from mmattn.models.attentions.external_attention import ExternalAttention
from mmattn.registry import MODELS


@MODELS.register_module()
class EAHead(BaseDecodeHead):
    """EANet head: conv-norm-act, external attention, conv-norm-act, classifier.

    Use from an mmseg config as ``decode_head=dict(type='mmattn.EAHead', in_channels=2048,
    channels=256, ...)`` with ``mmattn.seg`` in ``custom_imports``.

    Args:
        ea_channels (int): Channels of the external attention module (the first conv's output).
            Defaults to 512.
        num_slots (int): Memory slots S of the external attention. Defaults to 64.
        tie_init (bool): Start the attention with ``M_v = M_k^T`` (official). Defaults to True.
        **kwargs: :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead` arguments
            (``in_channels``, ``channels`` = the second conv's output, ``num_classes``,
            ``dropout_ratio``, ``norm_cfg``, ``act_cfg``, ``in_index``, ``align_corners``, ...).
    """

    def __init__(
        self, ea_channels: int = 512, num_slots: int = 64, tie_init: bool = True, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        conv_kw = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.fc0 = ConvModule(self.in_channels, ea_channels, 3, padding=1, **conv_kw)
        self.ea = ExternalAttention(
            ea_channels,
            num_slots=num_slots,
            tie_init=tie_init,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )
        self.fc1 = ConvModule(ea_channels, self.channels, 3, padding=1, **conv_kw)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Args: inputs (list[Tensor]): backbone maps. Returns: Tensor: (B, classes, H, W)."""
        x = self._transform_inputs(inputs)
        x = self.fc1(self.ea(self.fc0(x)))
        return self.cls_seg(x)
