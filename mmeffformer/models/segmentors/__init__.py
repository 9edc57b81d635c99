"""mmseg segmentor rewrites (these import mmseg).

- :func:`use_fast_postprocess`: the segmentor's ``predict`` post-processing without the
  identity resize and with a faster class argmax, same results.
"""

from .fast_postprocess import is_segmentor, use_fast_postprocess

__all__ = ['use_fast_postprocess', 'is_segmentor']
