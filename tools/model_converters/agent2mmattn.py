"""Convert an official Agent-PVT / Agent-Swin ImageNet checkpoint for mmattn.

    python tools/model_converters/agent2mmattn.py SRC DST [--family pvt|swin] [--arch t|s|m|l|b]

SRC is a file from LeapLabTHU/Agent-Attention (``{'model': state_dict, ...}``). The family
and variant are read off the keys; ``--family``/``--arch`` make it refuse on a mismatch. The
classifier (and Swin's final norm and derived buffers) are dropped; any other unused, missing
or mis-shaped key aborts the conversion and nothing is written. Use DST with
``backbone=dict(type='mmattn.AgentPVT', arch=..., init_cfg=dict(type='Pretrained',
checkpoint=DST))``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.agent import ConversionError, convert_file  # noqa: E402
from mmattn.utils.checkpoint import UnsafeCheckpointError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth or .safetensors)')
    parser.add_argument('--family', choices=['pvt', 'swin'], help='expected family')
    parser.add_argument('--arch', help='expected variant (t/s/m/l for PVT, t/s/b for Swin)')
    args = parser.parse_args(argv)
    try:
        report = convert_file(args.src, args.dst, args.arch, args.family)
    except (ConversionError, FileNotFoundError, UnsafeCheckpointError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    backbone = 'AgentPVT' if report['family'] == 'pvt' else 'AgentSwin'
    print(f"converted Agent-{report['family'].upper()}-{report['arch']} "
          f"({report['num_keys']} tensors) -> {args.dst}")
    print(f"dropped (classifier / derived buffers): {len(report['dropped'])} keys, e.g. "
          f"{report['dropped'][:4]}")
    if report['new']:
        print(f"left at init (dense output norms, not in ImageNet weights): {report['new']}")
    print(f"backbone: type='mmattn.{backbone}', arch='{report['arch']}', "
          f"agent_nums={report['agent_nums']}, pretrain_img_size={report['pretrain_img_size']}"
          f"; ops: {report['layout']} (attn_cfgs in the checkpoint's meta)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
