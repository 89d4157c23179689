"""Step 03: multi-factor features (`run_step` runs the step)."""

from helpers.features.build import run_step

__all__ = ["run_step"]
