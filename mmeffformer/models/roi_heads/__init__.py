"""mmdet RoI heads and extractors for Mask R-CNN on a CPU budget (these import mmdet).

- :class:`MaskBudgetRoIHead`: how many positive RoIs train the mask head;
- :class:`MatmulRoIExtractor`: multi-level RoI features by the matmul RoIAlign.
"""

from .mask_budget_roi_head import POSITIVE_FIELDS, MaskBudgetRoIHead
from .roi_extractors import MatmulRoIExtractor

__all__ = ['POSITIVE_FIELDS', 'MaskBudgetRoIHead', 'MatmulRoIExtractor']
