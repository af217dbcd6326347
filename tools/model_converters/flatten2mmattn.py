"""Convert an official FLatten-PVT / FLatten-PVTv2 / FLatten-Swin ImageNet checkpoint for mmattn.

    python tools/model_converters/flatten2mmattn.py SRC DST [--family pvt|pvtv2|swin] [--arch A]

SRC is a file from LeapLabTHU/FLatten-Transformer (``{'model': state_dict, ...}``). The
classifier (and Swin's derived buffers) are dropped; any other unused, missing or mis-shaped
key aborts the conversion and nothing is written. Use DST with
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` in ``FLattenPVT`` / ``FLattenPVTv2`` /
``FLattenSwin``. The family and variant are read off the checkpoint; ``--family`` and
``--arch`` only make the conversion refuse a file that is not what you expect.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.common import converter_main  # noqa: E402
from mmattn.converters.flatten import convert_file  # noqa: E402

OPTIONS = {
    '--family': dict(choices=['pvt', 'pvtv2', 'swin'], help='expected family; refuse on mismatch'),
    '--arch': dict(
        help='expected variant: t/s/m/l (PVT), b0-b4 (PVTv2), t/s/b (Swin); refuse on mismatch'
    ),
}


def summary(report: dict, dst: str) -> str:
    return (
        f'converted {report["name"]} ({report["num_keys"]} tensors; ops: {report["layout"]})'
        f' -> {dst}; dropped: {len(report["dropped"])} keys (classifier/buffers); left at '
        f'init: {report["new"]}'
    )


def main(argv=None) -> int:
    return converter_main(__doc__, convert_file, OPTIONS, summary, argv)


if __name__ == '__main__':
    sys.exit(main())
