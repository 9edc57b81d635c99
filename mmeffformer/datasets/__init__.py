"""Data transforms, input checks and the synthetic dataset generator."""

from .transforms import AlignResize

__all__ = ['AlignResize']
