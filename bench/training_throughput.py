"""Training throughput per architecture, with TensorFlow's oneDNN kernels off and on.

    python bench/training_throughput.py                 # all architectures, both settings
    python bench/training_throughput.py --steps 10 --models resnet_fast

Each (architecture, setting) runs in a fresh process, because TF_ENABLE_ONEDNN_OPTS is read
when TensorFlow is imported. It trains on real images from the shipped slice with the model's
recipe (batch size, optimizer, augmentation), skips the first steps (graph tracing) and reports
the median images/s over the timed steps. Compare the two settings as a ratio measured in one
run: absolute figures move with whatever else the machine is doing.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ARCHITECTURES = ("seed_cnn", "resnet_fast", "mobilenet_transfer")


def measure(model_name: str, steps: int, warmup: int) -> dict:
    """Runs inside the child process."""
    import numpy as np

    import cifar_cnn  # noqa: F401
    from cifar_cnn.data import load_slice
    from training.recipes import get_recipe
    from training.train import build_for_recipe, compile_for_phase, make_dataset

    recipe = get_recipe(model_name)
    data = load_slice()
    repeats = int(np.ceil(recipe.batch_size * (steps + warmup) / len(data.x_train)))
    x = np.concatenate([data.x_train] * repeats)
    y = np.concatenate([data.y_train] * repeats)
    model = build_for_recipe(recipe, data.x_train)
    compile_for_phase(model, recipe, steps_per_epoch=steps + warmup, phase="main")
    batches = iter(make_dataset(x, y, recipe.batch_size, recipe.augmentation, shuffle=True))
    seconds = []
    for step in range(steps + warmup):
        images, labels = next(batches)
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        if step >= warmup:
            seconds.append(time.perf_counter() - started)
    return {
        "model": model_name,
        "batch_size": recipe.batch_size,
        "images_per_second": recipe.batch_size / float(np.median(seconds)),
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.warmup)))
        return

    print("| model | batch | oneDNN off (images/s) | oneDNN on (images/s) | on / off |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        results = {}
        for flag in ("0", "1"):
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "TF_CPP_MIN_LOG_LEVEL": "3"}
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--steps", str(args.steps),
                 "--warmup", str(args.warmup)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[flag] = json.loads(out.stdout.strip().splitlines()[-1])
        off, on = results["0"]["images_per_second"], results["1"]["images_per_second"]
        print(f"| {name} | {results['1']['batch_size']} | {off:.0f} | {on:.0f} | {on / off:.2f} |")


if __name__ == "__main__":
    main()
