"""Convert an official Agent-PVT / Agent-Swin ImageNet checkpoint for mmattn.

    python tools/model_converters/agent2mmattn.py SRC DST [--family pvt|swin] [--arch t|s|m|l|b]

SRC is a file from LeapLabTHU/Agent-Attention (``{'model': state_dict, ...}``). The family
and variant are read off the keys; ``--family``/``--arch`` make it refuse on a mismatch. The
classifier (and Swin's final norm and derived buffers) are dropped; any other unused, missing
or mis-shaped key aborts the conversion and nothing is written. Use DST with
``backbone=dict(type='mmattn.AgentPVT', arch=..., init_cfg=dict(type='Pretrained',
checkpoint=DST))``.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.agent import convert_file  # noqa: E402
from mmattn.converters.common import converter_main  # noqa: E402

OPTIONS = {
    '--family': dict(choices=['pvt', 'swin'], help='expected family'),
    '--arch': dict(help='expected variant (t/s/m/l for PVT, t/s/b for Swin)'),
}


def summary(report: dict, dst: str) -> str:
    backbone = 'AgentPVT' if report['family'] == 'pvt' else 'AgentSwin'
    lines = [
        f'converted {report["name"]} ({report["num_keys"]} tensors) -> {dst}',
        f'dropped (classifier / derived buffers): {len(report["dropped"])} keys, e.g. '
        f'{report["dropped"][:4]}',
    ]
    if report['new']:
        lines.append(f'left at init (dense output norms, not in ImageNet weights): {report["new"]}')
    lines.append(
        f"backbone: type='mmattn.{backbone}', arch='{report['arch']}', "
        f'agent_nums={report["agent_nums"]}, '
        f'pretrain_img_size={report["pretrain_img_size"]}'
        f"; ops: {report['layout']} (attn_cfgs in the checkpoint's meta)"
    )
    return '\n'.join(lines)


def main(argv=None) -> int:
    return converter_main(__doc__, convert_file, OPTIONS, summary, argv)


if __name__ == '__main__':
    sys.exit(main())
