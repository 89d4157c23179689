"""The customer-segmentation workbench: `helpers.core` (shared) and one package per step."""

import warnings

# ArviZ (loaded by pymc-marketing in step 03) warns once a day at import about its coming refactor;
# in a notebook kernel that FutureWarning, with its install path, would print into the reports.
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
