"""Write the demo's synthetic COCO-format and ADE20K-layout sets (deterministic).

Usage: python tools/make_demo_data.py [--root data/synthetic] [--train 240] [--val 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeffformer.datasets.synthetic import write_dataset  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/synthetic')
    parser.add_argument('--train', type=int, default=240, help='training images')
    parser.add_argument('--val', type=int, default=60, help='held-out images')
    parser.add_argument('--size', type=int, default=256, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    counts = write_dataset(args.root, args.train, args.val, (args.size, args.size), args.seed)
    print(f'wrote {args.root}: {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
