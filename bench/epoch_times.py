"""Seconds per training epoch with a fresh input iterator per epoch, and with one for all epochs.

    python bench/epoch_times.py                 # resnet_fast, bfloat16, 12 epochs of 12 batches
    python bench/epoch_times.py --precision off --epochs 8

Each setting runs in a fresh process: the recipe's training model (`training.train`), its batch,
optimizer and augmentation, on the shipped slice repeated to `--batches` batches per epoch.
"fresh" passes the finite dataset to `fit`, which starts a new iterator every epoch (as
`cifar-train` did before); "one" passes it repeated, with `steps_per_epoch`, as `cifar-train`
does now. Each epoch's wall time is shown with the cores the process kept busy (its CPU time over
the wall time). On the 2-core AMX Xeon, until `training.train.make_dataset` turned tf.data's
autotuning off, most fresh-iterator epochs were slow: the same CPU time on 1.1 cores, the rest a
stall while the dropped iterator waited for its autotuning thread (docs/performance.md).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def epoch_seconds(setting: str, precision: str, epochs: int, batches: int) -> list[list[float]]:
    """Runs inside the child process: [wall seconds, CPU seconds of the whole process] per epoch."""
    import keras
    from training_throughput import slice_repeated

    import cifar_cnn  # noqa: F401  (oneDNN on)
    from cifar_cnn.models import get_recipe
    from training.train import (
        build_for_training,
        compile_for_phase,
        make_dataset,
        set_mixed_precision,
    )

    recipe = get_recipe("resnet_fast")
    set_mixed_precision(precision)
    x, y = slice_repeated(recipe.batch_size * batches)
    dataset = make_dataset(x, y, recipe.batch_size, recipe.augmentation, shuffle=True)
    model = build_for_training(recipe, x)
    compile_for_phase(model, recipe, batches, "main")
    seconds: list[list[float]] = []
    started = [0.0, 0.0]
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: started.__setitem__(
            slice(None), [time.perf_counter(), time.process_time()]
        ),
        on_epoch_end=lambda epoch, logs: seconds.append(
            [time.perf_counter() - started[0], time.process_time() - started[1]]
        ),
    )
    if setting == "one":
        model.fit(dataset.repeat(), steps_per_epoch=batches, epochs=epochs, verbose=0,
                  callbacks=[timer])  # fmt: skip
    else:
        model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", default="bf16", choices=["bf16", "off"])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batches", type=int, default=12, help="batches per epoch")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds = epoch_seconds(args.child, args.precision, args.epochs, args.batches)
        print(json.dumps(seconds))
        return
    for setting in ("one", "fresh"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", setting, "--precision", args.precision,
             "--epochs", str(args.epochs), "--batches", str(args.batches)],
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        epochs = json.loads(out.stdout.strip().splitlines()[-1])
        after_first = [wall for wall, _ in epochs[1:]]  # the first epoch traces and compiles
        each = ", ".join(f"{wall:.1f} ({cpu / wall:.1f})" for wall, cpu in epochs)
        print(f"{setting} iterator: epochs after the first {min(after_first):.1f}-"
              f"{max(after_first):.1f} s, median {np.median(after_first):.1f}; each in s "
              f"(cores busy): {each}")  # fmt: skip


if __name__ == "__main__":
    main()
