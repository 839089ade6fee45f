"""Experiment grids over the pipeline (the paper's tables as DVC experiments)."""
