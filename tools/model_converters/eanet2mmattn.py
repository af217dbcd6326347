"""Convert the official EANet segmentation checkpoint for mmseg ResNetV1c + mmattn.EAHead.

    python tools/model_converters/eanet2mmattn.py SRC DST [--depth 101]

SRC is a file saved by MenghaoGuo/EANet's ``train_torch.py`` (``{'net': state_dict}``, e.g. the
released PASCAL VOC model). Every official key is mapped; any unused, missing or mis-shaped key
aborts the conversion and nothing is written. Load DST with
``configs/external_attention/eanet_r101-d8-official_4xb4-45k_voc12aug-512x512.py``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.eanet import ConversionError, convert_file  # noqa: E402
from mmattn.utils.checkpoint import UnsafeCheckpointError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth, {"net": state_dict})')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument('--depth', type=int, choices=(50, 101, 152),
                        help='expected ResNet depth; refuse on mismatch')
    args = parser.parse_args(argv)
    try:
        report = convert_file(args.src, args.dst, args.depth)
    except (ConversionError, FileNotFoundError, UnsafeCheckpointError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f"converted EANet ResNet-{report['depth']}, {report['num_classes']} classes, "
          f"S={report['num_slots']} -> {args.dst}; num_batches_tracked filled: "
          f"{len(report['filled'])}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
