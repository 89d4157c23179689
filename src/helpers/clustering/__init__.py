"""Step 04, clustering: compare candidate segmentations, choose one, segment, profile and name."""

from helpers.clustering.step import run_step

__all__ = ["run_step"]
