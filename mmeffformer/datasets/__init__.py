"""Data transforms and the synthetic dataset generator."""
