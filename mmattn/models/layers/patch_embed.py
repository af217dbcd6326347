"""The conv patch embedding of the PVT-style pyramids: (B, C, H, W) map -> LayerNorm'd tokens.

Non-overlapping (PVT v1, kernel = stride) or overlapping (PVT v2, Shunted stages 2-4: kernel
larger than the stride, padding ``kernel // 2``). Sizes floor like the official convs.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .tokens import map_to_tokens

__all__ = ['ConvPatchEmbed']


class ConvPatchEmbed(nn.Module):
    """Conv patch embedding + LayerNorm (eps 1e-5, as the official PVT v1/v2 and Shunted).

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        patch_size (int): Stride of the conv (the downsampling factor).
        kernel_size (int, optional): Conv kernel; larger than ``patch_size`` makes the patches
            overlap, with padding ``kernel_size // 2`` (PVT v2: 7 for stride 4, 3 for
            stride 2; Shunted stages 2-4: 3 for stride 2).
            Defaults to None: ``patch_size``, non-overlapping, no padding (PVT v1).
    """

    def __init__(
        self, in_channels: int, embed_dims: int, patch_size: int, kernel_size: Optional[int] = None
    ) -> None:
        super().__init__()
        kernel_size = patch_size if kernel_size is None else int(kernel_size)
        if kernel_size < patch_size:
            raise ValueError(
                f'patch kernel {kernel_size} is smaller than its stride '
                f'{patch_size}: pixels between patches would be skipped'
            )
        self.overlap = kernel_size > patch_size
        self.proj = nn.Conv2d(
            in_channels,
            embed_dims,
            kernel_size=kernel_size,
            stride=patch_size,
            padding=kernel_size // 2 if self.overlap else 0,
        )
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        p = self.proj.kernel_size[0]
        if not self.overlap and (x.shape[2] < p or x.shape[3] < p):
            raise ValueError(
                f'stage input {x.shape[2]}x{x.shape[3]} is smaller than its {p}x{p} patch '
                f"embedding: the image is smaller than the backbone's total stride; pad or "
                f'resize it (at least 32 px per side for the 4-stage pyramid)'
            )
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(map_to_tokens(x)), hw
