"""Step 06: contact plan, call list, segment metrics and migration (`run_step` runs the step)."""

from helpers.strategy.step import run_step

__all__ = ["run_step"]
