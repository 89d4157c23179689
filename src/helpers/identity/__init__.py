"""Step 02: identity merge (`run_step` runs the step)."""

from helpers.identity.merge import run_step

__all__ = ["run_step"]
