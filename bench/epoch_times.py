"""Seconds per training epoch with a fresh input iterator per epoch, and with one for all epochs.

    python bench/epoch_times.py                 # resnet_fast, bfloat16, 12 epochs of 12 batches
    python bench/epoch_times.py --precision off --epochs 8

Each setting runs in a fresh process: the recipe's training model (`training.train`), its batch,
optimizer and augmentation, on the shipped slice repeated to `--batches` batches per epoch.
"fresh" passes the finite dataset to `fit`, which starts a new iterator every epoch (as
`cifar-train` did before); "one" passes it repeated, with `steps_per_epoch`, as `cifar-train`
does now. On the 2-core AMX Xeon whole epochs ran at one of two speeds with a fresh iterator,
never between, and only at the faster one with a single iterator (docs/performance.md).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def epoch_seconds(setting: str, precision: str, epochs: int, batches: int) -> list[float]:
    """Runs inside the child process."""
    import keras

    import cifar_cnn  # noqa: F401  (oneDNN on)
    from cifar_cnn.data.cifar10 import load_slice
    from cifar_cnn.models import get_recipe
    from training.train import (
        build_for_training,
        compile_for_phase,
        make_dataset,
        set_mixed_precision,
    )

    recipe = get_recipe("resnet_fast")
    data = load_slice()
    set_mixed_precision(precision)
    n = recipe.batch_size * batches
    repeats = int(np.ceil(n / len(data.x_train)))
    x = np.concatenate([data.x_train] * repeats)[:n]
    y = np.concatenate([data.y_train] * repeats)[:n]
    dataset = make_dataset(x, y, recipe.batch_size, recipe.augmentation, shuffle=True)
    model = build_for_training(recipe, data.x_train)
    compile_for_phase(model, recipe, batches, "main")
    seconds: list[float] = []
    started = [0.0]
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: started.__setitem__(0, time.perf_counter()),
        on_epoch_end=lambda epoch, logs: seconds.append(time.perf_counter() - started[0]),
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
        seconds = json.loads(out.stdout.strip().splitlines()[-1])
        after_first = seconds[1:]  # the first epoch traces and compiles
        print(f"{setting} iterator: epochs after the first {min(after_first):.1f}-"
              f"{max(after_first):.1f} s, median {np.median(after_first):.1f}: "
              + ", ".join(f"{s:.1f}" for s in seconds))  # fmt: skip


if __name__ == "__main__":
    main()
