"""The transformer block every skeleton uses: pre-norm token mixer + MLP, with drop path.

``x + DP(attn(norm1(x), hw)); x + DP(mlp(norm2(x), hw))``, the block of PVT, Swin, Shunted and
(with a positional conv in front, see ``backbones/biformer.py``) BiFormer. The attention op is
built by the skeleton (``layers/attn_builder.py``) and handed in, so a block never names an op.

Why not mmcv's ``FFN``: its parameters are named ``layers.0.0`` / ``layers.1``, while every
official checkpoint names them ``fc1`` / ``fc2``; :class:`Mlp` keeps those names so converted
checkpoints load without a renaming table, and adds a depthwise conv on the hidden map as an
option: Shunted's (added to the hidden map) or PVT v2's (replacing it).
Drop path, norms and activations are mmcv's bricks.
"""

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from .tokens import map_to_tokens, tokens_to_map

__all__ = ['BlockSequence', 'Mlp', 'TransformerBlock']


class Mlp(BaseModule):
    """``fc2(drop(act(g(h))))`` with ``h = fc1(x)``, then dropout.

    ``g`` is the identity without a depthwise conv, ``h + DWConv(h)`` with ``dw_residual``
    (Shunted's detail-specific FFN) and ``DWConv(h)`` without it (PVT v2's convolutional FFN).

    Args:
        embed_dims (int): Input and output channels.
        hidden_dims (int): Hidden channels.
        act_cfg (dict): Activation. Defaults to ``dict(type='GELU')``.
        drop_rate (float): Dropout after the activation and after ``fc2``. Defaults to 0.
        dw_kernel_size (int): Kernel of a depthwise conv on the hidden map, added to ``h``
            before the activation (Shunted and PVT v2: 3); 0 for none. Defaults to 0.
        dw_residual (bool): Add the depthwise conv's output to ``h`` (Shunted) instead of
            replacing ``h`` with it (PVT v2). Defaults to True.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        hidden_dims: int,
        act_cfg: dict = dict(type='GELU'),
        drop_rate: float = 0.0,
        dw_kernel_size: int = 0,
        dw_residual: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.dw_residual = dw_residual
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.dwconv = (
            nn.Conv2d(
                hidden_dims,
                hidden_dims,
                dw_kernel_size,
                padding=dw_kernel_size // 2,
                groups=hidden_dims,
            )
            if dw_kernel_size
            else None
        )
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor, hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """(B, N, C) tokens (of an ``hw_shape`` map, needed with the depthwise conv)."""
        h = self.fc1(x)
        if self.dwconv is not None:
            local = map_to_tokens(self.dwconv(tokens_to_map(h, hw_shape)))
            h = h + local if self.dw_residual else local
        # rebound before fc2, so fc1's output is freed first: without autograd the hidden map
        # (mlp_ratio x the tokens) then exists twice only inside the activation
        h = self.drop(self.act(h))
        return self.drop(self.fc2(h))


class TransformerBlock(BaseModule):
    """Pre-norm block: ``x + DP(attn(norm1(x), hw)); x + DP(mlp(norm2(x), hw))``.

    Args:
        embed_dims (int): Channels.
        attn (nn.Module): The token mixer, ``attn(x, hw_shape)`` on ``(B, N, C)`` tokens.
        mlp_ratio (float): Hidden ratio of the MLP.
        drop_rate (float): Dropout in the MLP. Defaults to 0.
        drop_path_rate (float): Stochastic depth of both branches. Defaults to 0.
        norm_cfg (dict): The two norms. Defaults to ``dict(type='LN')`` (eps 1e-5).
        act_cfg (dict): MLP activation. Defaults to ``dict(type='GELU')``.
        mlp_dw_kernel_size (int): Depthwise conv inside the MLP (see :class:`Mlp`).
            Defaults to 0.
        mlp_dw_residual (bool): The MLP's ``dw_residual`` (see :class:`Mlp`). Defaults to True.
        with_cp (bool): Gradient checkpointing of the block. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(
        self,
        embed_dims: int,
        attn: nn.Module,
        mlp_ratio: float,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_cfg: dict = dict(type='LN'),
        act_cfg: dict = dict(type='GELU'),
        mlp_dw_kernel_size: int = 0,
        mlp_dw_residual: bool = True,
        with_cp: bool = False,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = Mlp(
            embed_dims,
            int(embed_dims * mlp_ratio),
            act_cfg,
            drop_rate,
            mlp_dw_kernel_size,
            mlp_dw_residual,
        )

    def _forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.mlp(self.norm2(x), hw_shape))

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """(B, N, C) tokens of an ``hw_shape`` map -> the same shape."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, hw_shape, use_reentrant=False)
        return self._forward(x, hw_shape)


class BlockSequence(nn.ModuleList):
    """A stage's blocks, run in order on one map: ``forward(x, hw_shape)``.

    A ``ModuleList``, so the blocks keep the state-dict names ``<stage>.<j>.*``.
    """

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        """(B, N, C) tokens of an ``hw_shape`` map -> the same shape."""
        for block in self:
            x = block(x, hw_shape)
        return x
