"""Convert the official EANet segmentation checkpoint for mmseg ResNetV1c + mmattn.EAHead.

    python tools/model_converters/eanet2mmattn.py SRC DST [--depth 101]

SRC is a file saved by MenghaoGuo/EANet's ``train_torch.py`` (``{'net': state_dict}``, e.g. the
released PASCAL VOC model). Every official key is mapped; any unused, missing or mis-shaped key
aborts the conversion and nothing is written. Load DST with
``configs/external_attention/eanet_r101-d8-official_4xb4-45k_voc12aug-512x512.py``.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.common import converter_main  # noqa: E402
from mmattn.converters.eanet import convert_file  # noqa: E402

OPTIONS = {
    '--depth': dict(
        type=int, choices=(50, 101, 152), help='expected ResNet depth; refuse on mismatch'
    )
}


def summary(report: dict, dst: str) -> str:
    return (
        f'converted EANet ResNet-{report["depth"]}, {report["num_classes"]} classes, '
        f'S={report["num_slots"]} -> {dst}; num_batches_tracked filled: '
        f'{len(report["filled"])}'
    )


def main(argv=None) -> int:
    return converter_main(__doc__, convert_file, OPTIONS, summary, argv)


if __name__ == '__main__':
    sys.exit(main())
