"""Step 04, clustering: compare candidate segmentations, choose one, segment, profile and name.

`compare_segmentations(matrix, settings)` runs the same comparison and selection on any numeric
matrix (business columns optional), so the choice can be evaluated on outside data.
"""

from helpers.clustering.segmentations import SegmentationComparison, compare_segmentations
from helpers.clustering.step import run_step

__all__ = ["SegmentationComparison", "compare_segmentations", "run_step"]
