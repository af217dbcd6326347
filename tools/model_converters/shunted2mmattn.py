"""Convert an official Shunted Transformer ImageNet checkpoint for mmattn's ShuntedTransformer.

    python tools/model_converters/shunted2mmattn.py SRC DST [--arch t|s|b]

SRC is a file from OliverRensu/Shunted-Transformer (``{'model': state_dict, ...}``). The
classifier head is dropped; any other unused, missing or mis-shaped key aborts the conversion
and nothing is written. Use DST with ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.common import converter_main  # noqa: E402
from mmattn.converters.shunted import convert_file  # noqa: E402

OPTIONS = {'--arch': dict(help='expected variant: t/tiny, s/small, b/base; refuse on mismatch')}


def summary(report: dict, dst: str) -> str:
    return (
        f'converted Shunted-{report["arch"]} ({report["num_keys"]} tensors) -> {dst}; '
        f'dropped classifier keys: {report["dropped"]}'
    )


def main(argv=None) -> int:
    return converter_main(__doc__, convert_file, OPTIONS, summary, argv)


if __name__ == '__main__':
    sys.exit(main())
