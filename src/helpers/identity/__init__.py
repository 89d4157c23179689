"""Step 02: identity merge (`run_step` runs the step; `link_records` applies its method to any
table of person records)."""

from helpers.identity.link import link_records
from helpers.identity.merge import run_step

__all__ = ["link_records", "run_step"]
