"""Convert an official BiFormer ImageNet checkpoint for mmattn's BiFormer backbone.

    python tools/model_converters/biformer2mmattn.py SRC DST [--arch t|s|b]

SRC is a file released by rayleizhu/BiFormer (``{'model': state_dict, ...}``, e.g.
``biformer_small_in1k.pth``). The classifier head and final norm are dropped (as in the
official dense wrappers); the per-level output LayerNorms are not in the release and start
fresh. Any other unused, missing or mis-shaped key aborts the conversion and nothing is
written. Use DST with ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.biformer import ConversionError, convert_file  # noqa: E402
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
    print(f"converted BiFormer-{report['arch']} -> {args.dst}\n"
          f"dropped (classifier head / final norm): {report['dropped']}\n"
          f"missing (output norms, initialised fresh): {report['missing']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
