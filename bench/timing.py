"""Timing several ways of doing the same thing on a shared, noisy machine."""

import argparse
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


def ways_arguments(doc: str, dtypes: list[str]) -> argparse.Namespace:
    """The command line of a bench that times ways of computing one thing on resnet_fast's shapes:
    `--dtypes` (default `dtypes`), `--batch` (the recipe's 1,024) and `--repeats`."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--dtypes", nargs="+", default=dtypes)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def relative_difference(result, reference) -> float:
    """The largest absolute difference of two tensors over the reference's largest magnitude."""
    import tensorflow as tf

    result, reference = tf.cast(result, "float32"), tf.cast(reference, "float32")
    return float(tf.reduce_max(tf.abs(result - reference)) / tf.reduce_max(tf.abs(reference)))
