"""Wall-clock timing of a call."""

import time

import numpy as np


def median_seconds(function, warmup, repeats):
    """Median wall-clock seconds of `function()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return float(np.median(durations))
