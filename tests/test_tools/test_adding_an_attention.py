"""docs/adding_an_attention.md, followed to the letter: one op, one config, every tool.

This file *is* the op file of the guide: it defines and registers ``ToyGlobalAttention``. A
config that only names it (``attn_cfgs=dict(type='mmattn.ToyGlobalAttention')`` in the PVT
skeleton, the file in ``custom_imports``) trains a Semantic FPN on the bundled shapes data for
2 iterations through ``tools/train.py``, and ``tools/analysis_tools/get_flops.py`` and
``tools/visualization/attention_map.py`` work on it with no change anywhere else.
"""

import glob
import json
import os.path as osp
import re
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmattn.models.attentions import AttentionWeights, BaseAttention
from mmattn.registry import MODELS

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
PVT = dict(
    embed_dims=[16, 32, 48, 64],
    num_heads=[1, 2, 3, 4],
    mlp_ratios=[2, 2, 2, 2],
    depths=[1, 1, 1, 1],
    sr_ratios=[8, 4, 2, 1],
)


# ---------------------------------------------------------------- the op (the guide's step 1)
@MODELS.register_module()
class ToyGlobalAttention(BaseAttention):
    """Multi-head softmax attention over all tokens, ``proj(softmax(s q k^T) v)``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads. Defaults to 1.
        fused_attn (bool): Use ``F.scaled_dot_product_attention``. Defaults to True.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int = 1,
        fused_attn: bool = True,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_heads, self.fused_attn = num_heads, fused_attn
        self.scale = (embed_dims // num_heads) ** -0.5
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        h, w = self.check_input(x, hw_shape)  # ValueError unless N == H * W
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if self.fused_attn and not self.recording:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, heads, N, N)
            if self.recording:  # hand the weights to the tools
                self.emit(AttentionWeights('toy softmax', attn, (h, w), (h, w)))
            out = attn @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


# ---------------------------------------------------------------- the config (step 2)
def _config(tmp_path) -> str:
    path = tmp_path / 'fpn_pvt-toy_shapes.py'
    path.write_text(
        f'_base_ = {osp.join(REPO, "configs", "shapes", "fpn_r18_shapes.py")!r}\n'
        "custom_imports = dict(imports=['mmattn.models', 'test_adding_an_attention'],\n"
        '                      allow_failed_imports=False)\n'
        'model = dict(\n'
        "    backbone=dict(_delete_=True, type='mmattn.PyramidVisionTransformerSkeleton',\n"
        f'                  arch={PVT!r},\n'
        "                  attn_cfgs=dict(type='mmattn.ToyGlobalAttention'),\n"
        '                  drop_path_rate=0., init_cfg=None),\n'
        f'    neck=dict(in_channels={PVT["embed_dims"]!r}))\n'
    )
    return str(path)


def test_new_op_trains_and_gets_every_tool(tool, shapes_data, tmp_path):
    cfg = _config(tmp_path)
    env = dict(PYTHONPATH=HERE)  # where custom_imports finds the op file
    work = tmp_path / 'work'
    tool(
        'train.py',
        cfg,
        '--work-dir',
        work,
        '--cfg-options',
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        env=env,
    )
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()
    sd = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    assert any('attn.qkv.weight' in k for k in sd)  # the toy op is what trained

    out_json = tmp_path / 'flops.json'
    proc = tool(
        'analysis_tools/get_flops.py',
        cfg,
        '--shape',
        '64',
        '64',
        '--backbone-only',
        '--json',
        out_json,
        env=env,
    )
    assert 'WARNING' not in proc.stdout
    flops = json.loads(out_json.read_text())
    # the attention products are counted: (N^2 d) twice per block, N = 16^2 ... 2^2
    assert flops['flops'] > sum(
        2 * (64 // 4 // 2**i) ** 4 * c for i, c in enumerate(PVT['embed_dims'])
    )

    img = sorted(glob.glob(osp.join(shapes_data['ade'], 'images', 'validation', '*.jpg')))[0]
    png = tmp_path / 'map.png'
    proc = tool(
        'visualization/attention_map.py',
        img,
        cfg,
        ckpt,
        '--point',
        '40',
        '70',
        '--out',
        png,
        '--size',
        '96',
        env=env,
    )
    assert re.search(r'4 op call\(s\), 4 map\(s\)', proc.stdout), proc.stdout
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_maps_are_the_op_weights():
    """The attention-map tool draws what the op computed (not the saliency fallback)."""
    from mmattn.analysis.attention_maps import op_maps, record_attention_calls
    from mmattn.analysis.ops import attention_ops, build_op

    assert 'ToyGlobalAttention' in attention_ops()  # registration alone
    torch.manual_seed(0)
    op = build_op('ToyGlobalAttention', 16, 2)
    x = torch.randn(1, 6 * 7, 16)
    (rec,) = record_attention_calls(op, lambda: op(x, (6, 7)))
    (m,) = op_maps(rec, (0.5, 0.5))
    assert m.title == 'toy softmax' and abs(m.map.sum() - 1) < 1e-5
    with torch.no_grad():
        q, k, _ = op.qkv(x).reshape(1, 42, 3, 2, 8).permute(2, 0, 3, 1, 4)
        attn = ((q * op.scale) @ k.transpose(-2, -1)).softmax(-1)[0, :, 3 * 7 + 3].mean(0)
    torch.testing.assert_close(torch.from_numpy(m.map).reshape(-1), attn)


def test_the_new_op_is_a_plugin_for_free():
    """The guide's step 4: the op, named by its type alone, runs as an NCHW plug-in."""
    from mmattn.models.plugins import AttentionPlugin

    torch.manual_seed(0)
    plugin = AttentionPlugin(64, dict(type='ToyGlobalAttention'), layer_scale_init=1.0)
    assert plugin.attn.num_heads == 2  # the plug-in's rule: heads of >= 32 channels
    x = torch.randn(1, 64, 9, 11)
    with torch.no_grad():
        tokens = plugin.norm(x.flatten(2).transpose(1, 2))
        ref = x + plugin.attn(tokens, (9, 11)).transpose(1, 2).reshape(1, 64, 9, 11)
        torch.testing.assert_close(plugin(x), ref)
