"""Convert an official BiFormer ImageNet checkpoint for mmattn's BiFormer backbone.

    python tools/model_converters/biformer2mmattn.py SRC DST [--arch t|s|b]

SRC is a file released by rayleizhu/BiFormer (``{'model': state_dict, ...}``, e.g.
``biformer_small_in1k.pth``). The classifier head and final norm are dropped (as in the
official dense wrappers); the per-level output LayerNorms are not in the release and start
fresh. Any other unused, missing or mis-shaped key aborts the conversion and nothing is
written. Use DST with ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.converters.biformer import convert_file  # noqa: E402
from mmattn.converters.common import converter_main  # noqa: E402

OPTIONS = {'--arch': dict(help='expected variant: t/tiny, s/small, b/base; refuse on mismatch')}


def summary(report: dict, dst: str) -> str:
    return (
        f'converted BiFormer-{report["arch"]} -> {dst}\n'
        f'dropped (classifier head / final norm): {report["dropped"]}\n'
        f'missing (output norms, initialised fresh): {report["missing"]}'
    )


def main(argv=None) -> int:
    return converter_main(__doc__, convert_file, OPTIONS, summary, argv)


if __name__ == '__main__':
    sys.exit(main())
