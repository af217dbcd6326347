"""Generate the bundled synthetic datasets (deterministic; a no-op when already present).

python tools/dataset_converters/make_shapes.py [--root data]
"""

import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmattn.datasets.shapes import make_shapes_ade, make_shapes_coco  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data', help='parent folder of the datasets')
    args = parser.parse_args()
    for name, make in (('shapes_coco', make_shapes_coco), ('shapes_ade', make_shapes_ade)):
        start = time.time()
        dst = osp.join(args.root, name)
        built = make(dst)
        state = f'written in {time.time() - start:.1f}s' if built else 'already present'
        print(f'{dst}: {state}')


if __name__ == '__main__':
    main()
