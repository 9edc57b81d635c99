"""mmseg segmentor rewrites (these import mmseg).

- :func:`deploy_postprocess`: the segmentor's ``predict`` post-processing without the
  identity resize and with a faster class argmax, same results.
"""

from .deploy_postprocess import deploy_postprocess, is_segmentor

__all__ = ['deploy_postprocess', 'is_segmentor']
