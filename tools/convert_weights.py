"""Convert EfficientFormer weights to mmeffformer's layout.

Usage: python tools/convert_weights.py SRC DST

SRC may be an authors' ImageNet file (efficientformer_l1_300d.pth,
eformer_s0_450.pth), an authors' mmdet 2.x / mmseg 0.x downstream file, a timm
or an mmpretrain checkpoint. Classification sources give a backbone-only file
(for ``init_cfg=dict(type='Pretrained', ...)``); downstream sources give the whole
model, loadable strictly by ``tools/test.py``. Any tensor that cannot be placed
stops the conversion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeffformer.checkpoint import save_converted  # noqa: E402
from mmeffformer.checkpoint.reading import UnreadableCheckpointError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint to convert')
    parser.add_argument('dst', help='where to write the mmengine checkpoint')
    args = parser.parse_args(argv)
    if not Path(args.src).is_file():
        parser.error(f'no such checkpoint file: {args.src}')
    try:
        info = save_converted(args.src, args.dst)
    except UnreadableCheckpointError as error:
        parser.exit(1, f'{parser.prog}: error: {error}\n')
    print(f'{args.src} ({info["source_layout"]} layout, EfficientFormer{info["family"].upper()})')
    print(f'  -> {args.dst}; dropped {len(info["dropped"])} tensors (heads, indices)')
    if 'attn_bias' in info:
        print(f"  needs backbone attn_bias='official', attn_bias_size={info['attn_bias_size']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
