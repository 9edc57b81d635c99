"""The benchmark suite: ``python -m benchmarks`` (see docs/benchmarks.md)."""

import warnings

# mmengine imports pkg_resources, which warns on every import with new setuptools
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
