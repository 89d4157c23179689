"""Shared figure and table style: static matplotlib/seaborn so rendered reports stay self-contained.

Inside a kernel matplotlib uses the inline backend (figures embedded as PNG); headless scripts
and tests fall back to Agg by themselves.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

PALETTE = "tab10"


def setup() -> None:
    """Apply the workbench style (call once per notebook)."""
    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    plt.rcParams.update({"figure.figsize": (9, 4.5), "figure.dpi": 100, "axes.titleweight": "bold"})
    # Chinese characters in labels render with a CJK font when one is installed.
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False


def readable_number(value: float) -> str:
    """Table format for mixed magnitudes: whole numbers with separators from 100 up, else 2 decimals."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
