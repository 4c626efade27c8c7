"""Training throughput per architecture: the project's setup against a plain `model.fit` baseline.

    python bench/training_throughput.py                  # all architectures
    python bench/training_throughput.py --steps 12 --models resnet_fast

Four settings per architecture, each in a fresh process (TF_ENABLE_ONEDNN_OPTS is read when
TensorFlow is imported), all with the model's recipe (batch size, optimizer, loss):

- baseline: plain `model.fit` on numpy arrays, no augmentation, TensorFlow's default on this CPU
  (oneDNN off);
- pipeline: the project's tf.data pipeline (shuffle, augmentation, prefetch), oneDNN off;
- project: as `cifar-train` runs: the same pipeline with oneDNN on, in the recipe's precision
  ("auto": float32 on a CPU, float16 on a GPU);
- bf16: the project's setting in bfloat16 (`--mixed-precision bf16`), for CPUs with native
  bfloat16 such as the development machine's AMX Xeon.

Each trains `--steps` batches of real images (the shipped slice, repeated) after a warm-up fit
that traces the graph, and reports images/s. Compare settings as ratios within one run: absolute
figures move with whatever else the machine is doing.
"""

import argparse
import inspect
import json
import os
import subprocess
import sys
import time

ARCHITECTURES = ("seed_cnn", "resnet_fast", "mobilenet_transfer")
# setting -> TF_ENABLE_ONEDNN_OPTS
SETTINGS = {"baseline": "0", "pipeline": "0", "project": "1", "bf16": "1"}


def measure(model_name: str, setting: str, steps: int) -> float:
    """Runs inside the child process; returns images/s."""
    import keras
    import numpy as np

    import cifar_cnn  # noqa: F401
    from cifar_cnn.data.cifar10 import load_slice
    from cifar_cnn.models import get_recipe, get_spec
    from training.train import (
        build_for_recipe,
        compile_for_phase,
        make_dataset,
        set_mixed_precision,
    )

    recipe = get_recipe(model_name)
    if "backbone_weights" in inspect.signature(get_spec(model_name).build).parameters:
        # Speed does not depend on the pretrained values: random weights need no download.
        recipe = recipe.replace(model_options={**recipe.model_options, "backbone_weights": None})
    if setting in ("project", "bf16"):
        set_mixed_precision(recipe.mixed_precision if setting == "project" else "bf16")
    data = load_slice()
    warmup = 2
    repeats = int(np.ceil(recipe.batch_size * (steps + warmup) / len(data.x_train)))
    x = np.concatenate([data.x_train] * repeats)[: recipe.batch_size * (steps + warmup)]
    y = np.concatenate([data.y_train] * repeats)[: len(x)]
    model = build_for_recipe(recipe, data.x_train)
    compile_for_phase(model, recipe, steps_per_epoch=steps + warmup, phase="main")
    n_warm = recipe.batch_size * warmup
    if setting == "baseline":
        one_hot = keras.utils.to_categorical(y, 10)
        model.fit(x[:n_warm], one_hot[:n_warm], batch_size=recipe.batch_size, verbose=0)
        started = time.perf_counter()
        model.fit(x[n_warm:], one_hot[n_warm:], batch_size=recipe.batch_size, verbose=0)
    else:
        pipeline = {"batch_size": recipe.batch_size, "augmentation": recipe.augmentation}
        model.fit(make_dataset(x[:n_warm], y[:n_warm], shuffle=True, **pipeline), verbose=0)
        train = make_dataset(x[n_warm:], y[n_warm:], shuffle=True, **pipeline)
        started = time.perf_counter()
        model.fit(train, verbose=0)
    return (len(x) - n_warm) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.steps)))
        return

    print("| model | plain `model.fit` baseline, oneDNN off (images/s) | project pipeline, oneDNN "
          "off | project pipeline, oneDNN on (as `cifar-train` runs) | the same in bfloat16 "
          "| project / baseline |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        speed = {}
        for setting, onednn in SETTINGS.items():
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, setting, "--steps", str(args.steps)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            speed[setting] = json.loads(out.stdout.strip().splitlines()[-1])
        cells = " | ".join(f"{speed[s]:.0f}" for s in SETTINGS)
        print(f"| {name} | {cells} | {speed['project'] / speed['baseline']:.2f} |")


if __name__ == "__main__":
    main()
