"""Convert an official FLatten-PVT / FLatten-PVTv2 / FLatten-Swin ImageNet checkpoint for mmattn.

    python tools/model_converters/flatten2mmattn.py SRC DST [--family pvt|pvtv2|swin] [--arch A]

SRC is a file from LeapLabTHU/FLatten-Transformer (``{'model': state_dict, ...}``). The
classifier (and Swin's derived buffers) are dropped; any other unused, missing or mis-shaped
key aborts the conversion and nothing is written. Use DST with
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` in ``FLattenPVT`` / ``FLattenPVTv2`` /
``FLattenSwin``. The family and variant are read off the checkpoint; ``--family`` and
``--arch`` only make the conversion refuse a file that is not what you expect.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.flatten import ConversionError, convert_file  # noqa: E402
from mmattn.utils.checkpoint import UnsafeCheckpointError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth or .safetensors)')
    parser.add_argument('--family', choices=['pvt', 'pvtv2', 'swin'],
                        help='expected family; refuse on mismatch')
    parser.add_argument('--arch', help='expected variant: t/s/m/l (PVT), b0-b4 (PVTv2), t/s/b '
                        '(Swin); refuse on mismatch')
    args = parser.parse_args(argv)
    try:
        report = convert_file(args.src, args.dst, args.arch, args.family)
    except (ConversionError, FileNotFoundError, UnsafeCheckpointError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f"converted {report['name']} "
          f"({report['num_keys']} tensors; ops: {report['layout']}) -> {args.dst}; "
          f"dropped: {len(report['dropped'])} keys (classifier/buffers); left at init: "
          f"{report['new']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
