# Citation: dong2022cswin (BibTeX in configs/cswin/README.md)
# UperNet (ADE20K 160k) with Agent-CSWin-S: the Agent-CSWin-T recipe (upernet_agent-cswin-
# t_8xb2-160k_ade20k-512x512.py) with
# the small arch (LeapLabTHU/Agent-Attention agent_transformer/models/agent_cswin.py,
# cfgs/agent_cswin_s.yaml), channels 64-512 and drop path 0.4.
_base_ = './upernet_agent-cswin-t_8xb2-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/agent_cswin_s_mmattn.pth'),
    ),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256),
)
