"""`helpers.core.plots.histogram` draws what `Axes.hist` draws, with one artist instead of one per bar."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers.core import plots


def _render(draw: object, values: np.ndarray, bins: int) -> tuple[np.ndarray, tuple, tuple]:
    figure, axis = plt.subplots(figsize=(4, 3), dpi=110)
    draw(axis, values, bins)  # type: ignore[operator]
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba()).astype(int)
    limits = axis.get_xlim(), axis.get_ylim()
    plt.close(figure)
    return pixels, *limits


@pytest.mark.parametrize("bins", [5, 40])
def test_histogram_looks_like_axes_hist(bins: int) -> None:
    plots.setup()
    values = np.random.default_rng(3).lognormal(3, 1, 5000)
    hist, hist_x, hist_y = _render(
        lambda axis, v, b: axis.hist(v, bins=b, color="tab:blue", edgecolor="white"), values, bins
    )
    fast, fast_x, fast_y = _render(lambda axis, v, b: plots.histogram(axis, v, bins=b), values, bins)
    assert fast_x == pytest.approx(hist_x) and fast_y == pytest.approx(hist_y)  # same axes, no margin below
    differing = (hist != fast).any(axis=-1)
    assert differing.mean() < 0.002  # anti-aliasing at a few bar corners, nothing a reader sees
    assert np.abs(hist - fast).max() <= 32
    blue = np.array(matplotlib.colors.to_rgba("tab:blue")) * 255
    assert (np.abs(fast - blue).max(axis=-1) < 2).sum() > 0.01 * differing.size  # the bars are drawn


def test_histogram_counts_are_those_of_numpy() -> None:
    figure, axis = plt.subplots()
    values = np.array([0.0, 0.1, 0.2, 0.9, 1.0, 1.0])
    bars = plots.histogram(axis, values, bins=2)
    heights = [path.vertices[:, 1].max() for path in bars.get_paths()]
    assert heights == [3, 3]  # [0, 0.5): 3 values, [0.5, 1]: 3 values
    assert axis.get_ylim()[0] == 0
    plt.close(figure)
