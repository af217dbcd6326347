"""Convert an official Agent-CSWin / FLatten-CSWin / CSWin ImageNet checkpoint for mmattn.

    python tools/model_converters/cswin2mmattn.py SRC DST [--family agent|flatten|cswin]
        [--arch t|s|b]

SRC is a file from LeapLabTHU/Agent-Attention or LeapLabTHU/FLatten-Transformer
(``{'model': state_dict, ...}``) or microsoft/CSWin-Transformer. The family and variant are
read off the keys; ``--family``/``--arch`` make it refuse on a mismatch. The classifier and its
norm are dropped; any other unused, missing or mis-shaped key aborts the conversion and nothing
is written. Use DST with ``backbone=dict(type='mmattn.AgentCSWin', arch=...,
init_cfg=dict(type='Pretrained', checkpoint=DST))``.
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.cswin import ConversionError, convert_file  # noqa: E402
from mmattn.utils.checkpoint import UnsafeCheckpointError  # noqa: E402

_TYPES = {'agent': 'AgentCSWin', 'flatten': 'FLattenCSWin', 'cswin': 'CSWin'}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth or .safetensors)')
    parser.add_argument('--family', choices=sorted(_TYPES), help='expected family')
    parser.add_argument('--arch', help='expected variant (t/s/b)')
    args = parser.parse_args(argv)
    try:
        report = convert_file(args.src, args.dst, args.arch, args.family)
    except (ConversionError, FileNotFoundError, UnsafeCheckpointError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    backbone = _TYPES[report['family']]
    print(f'converted {backbone}-{report["arch"]} ({report["num_keys"]} tensors) -> {args.dst}')
    print(f'dropped (classifier): {report["dropped"]}')
    print(f'left at init (dense output norms, not in ImageNet weights): {report["new"]}')
    extra = f', agent_nums={report["agent_nums"]}' if 'agent_nums' in report else ''
    print(
        f"backbone: type='mmattn.{backbone}', arch='{report['arch']}'{extra}, "
        f'pretrain_img_size={report["pretrain_img_size"]}; ops: {report["layout"]}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
