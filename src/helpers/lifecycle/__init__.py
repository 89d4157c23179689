"""Step 05: lifecycle stage and churn risk per customer (`run_step` runs the step)."""

from helpers.lifecycle.step import run_step

__all__ = ["run_step"]
