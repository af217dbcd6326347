"""Convert an official Shunted Transformer ImageNet checkpoint for mmattn's ShuntedTransformer.

    python tools/model_converters/shunted2mmattn.py SRC DST [--arch t|s|b]

SRC is a file from OliverRensu/Shunted-Transformer (``{'model': state_dict, ...}``). The
classifier head is dropped; any other unused, missing or mis-shaped key aborts the conversion
and nothing is written. Use DST with ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.shunted import ConversionError, convert_file  # noqa: E402
from mmattn.utils.checkpoint import UnsafeCheckpointError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth or .safetensors)')
    parser.add_argument('--arch', help='expected variant: t/tiny, s/small, b/base; refuse '
                        'on mismatch')
    args = parser.parse_args(argv)
    try:
        report = convert_file(args.src, args.dst, args.arch)
    except (ConversionError, FileNotFoundError, UnsafeCheckpointError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f"converted Shunted-{report['arch']} ({report['num_keys']} tensors) -> {args.dst}; "
          f"dropped classifier keys: {report['dropped']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
