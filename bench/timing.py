"""Timing several ways of doing the same thing on a shared, noisy machine."""

import time
from collections.abc import Callable, Sequence

import numpy as np


def interleaved_medians_ms(functions: Sequence[Callable], args: tuple, repeats: int) -> list[float]:
    """Each function's median milliseconds over `repeats` calls of `function(*args)`, the functions
    taking turns within each repeat, so that a slow spell of the machine falls on all of them.

    Call each function once beforehand (tracing, compiling): the first call is not a fair sample.
    """
    seconds: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, samples in zip(functions, seconds, strict=True):
            started = time.perf_counter()
            function(*args)
            samples.append(time.perf_counter() - started)
    return [1000 * float(np.median(samples)) for samples in seconds]
