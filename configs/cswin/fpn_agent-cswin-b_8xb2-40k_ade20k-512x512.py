# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# Semantic FPN (ADE20K 40k) with Agent-CSWin-B: the Agent-CSWin-T recipe (fpn_agent-cswin-
# t_8xb2-40k_ade20k-512x512.py) with
# the base arch (LeapLabTHU/Agent-Attention agent_transformer/models/agent_cswin.py,
# cfgs/agent_cswin_b.yaml), channels 96-768 and drop path 0.6.
_base_ = './fpn_agent-cswin-t_8xb2-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_cswin_b_mmattn.pth'),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
