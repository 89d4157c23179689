"""`helpers.core.measure.MemoryTimeline`, which `benchmarks/bench_identity_memory.py` measures step 02
with: it sees a peak and names the function that made it."""

from __future__ import annotations

import time

import numpy as np
import psutil

from helpers.core.measure import MemoryTimeline


def hold_memory(mib: int) -> int:
    """Fill `mib` MiB and keep them a moment."""
    block = np.ones(mib << 17)  # 8-byte floats
    time.sleep(0.4)
    return int(block[-1])


def test_the_timeline_sees_the_peak_and_where_it_was_reached() -> None:
    before = psutil.Process().memory_info().rss >> 20
    with MemoryTimeline(interval=0.02, step_mib=20, package="test_identity_memory") as timeline:
        hold_memory(300)
        time.sleep(0.1)
    seconds, rss, where = max(timeline.peaks, key=lambda peak: peak[1])
    assert rss >= before + 250 and where[-1].startswith("test_identity_memory.py:")
    assert where[-1].endswith(" hold_memory")
    # Once the block is freed, later samples are lower again; samples run in time order.
    assert timeline.samples[-1][1] < rss - 200
    assert [s[0] for s in timeline.samples] == sorted(s[0] for s in timeline.samples) and seconds > 0
