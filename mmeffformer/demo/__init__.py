"""The pieces of ``tools/demo.py``: terminal progress, precision choice, figures, report."""
