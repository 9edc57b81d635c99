"""RoI feature extractors."""

from .matmul_roi_extractor import MatmulRoIExtractor

__all__ = ['MatmulRoIExtractor']
