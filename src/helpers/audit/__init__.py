"""Step 01: data audit (`run_step` runs the step)."""

from helpers.audit.report import run_step

__all__ = ["run_step"]
