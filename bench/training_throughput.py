"""Training throughput per architecture: the project's setup against a plain `model.fit` baseline.

    python bench/training_throughput.py                  # all architectures
    python bench/training_throughput.py --steps 12 --models resnet_fast

Four settings per architecture, each in a fresh process (TF_ENABLE_ONEDNN_OPTS is read when
TensorFlow is imported), all with the model's recipe (batch size, optimizer, loss):

- baseline: plain `model.fit` on numpy arrays, no augmentation, TensorFlow's default on this CPU
  (oneDNN off);
- pipeline: the project's tf.data pipeline (shuffle, augmentation, prefetch) and training model
  (BatchNorm as fused kernels and more, `training.fast_layers`), oneDNN off;
- project: as `cifar-train` runs: the same pipeline with oneDNN on, in the recipe's precision
  ("auto": float32 on a CPU, float16 on a GPU);
- bf16: the project's setting in bfloat16 (`--mixed-precision bf16`), for CPUs with native
  bfloat16 such as the development machine's AMX Xeon; as `cifar-train` trains in it, with XLA
  fusing the elementwise ops between oneDNN's convolutions (`training.train.set_mixed_precision`).

Each trains `--steps` batches of real images (the shipped slice, repeated) after a warm-up fit
that traces the graph, and reports images/s of its median step (the time from one batch's end to
the next, so the stall of up to 4 s that a `fit` call sometimes has at its start or end on this
machine is not counted as training); with `--rounds N` every setting runs N times, interleaved,
and the median is shown. Compare settings as ratios within one run: absolute figures
move with whatever else the machine is doing.

The same run measures this machine's peak: a 3x3 convolution, 256 to 256 channels at 16x16,
batch 256, in float32 and bfloat16 (GFLOP/s), and reports the share of it a training step reaches
(the model's training FLOPs per image, three times its forward convolutions and dense layers,
times images/s).
"""

import argparse
import inspect
import json
import os
import subprocess
import sys
import time

import numpy as np

ARCHITECTURES = ("seed_cnn", "resnet_fast", "mobilenet_transfer")
# setting -> TF_ENABLE_ONEDNN_OPTS
SETTINGS = {"baseline": "0", "pipeline": "0", "project": "1", "bf16": "1"}


def conv_peak(dtype: str, repeats: int = 20) -> float:
    """GFLOP/s of a 3x3 convolution, 256 to 256 channels, 16x16, batch 256 (in a child)."""
    import numpy as np
    import tensorflow as tf

    import cifar_cnn  # noqa: F401  (oneDNN on)

    x = tf.cast(tf.random.normal((256, 16, 16, 256)), dtype)
    kernel = tf.cast(tf.random.normal((3, 3, 256, 256)), dtype)
    conv = tf.function(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"))
    conv(x, kernel).numpy()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        conv(x, kernel).numpy()
        seconds.append(time.perf_counter() - started)
    return 2 * 256 * 16 * 16 * 256 * 256 * 9 / float(np.median(seconds)) / 1e9


def training_flops_per_image(model_name: str) -> float:
    """Three times the forward FLOPs of the model's convolutions and dense layers (a training
    step: forward, and gradients for inputs and weights)."""
    import keras

    from cifar_cnn.models import create_model

    model = create_model(model_name, backbone_weights=None) if model_name == "mobilenet_transfer" \
        else create_model(model_name)  # fmt: skip
    forward = 0.0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            forward += 2 * h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            cin = layer.input.shape[-1]
            forward += 2 * h * w * c * cin * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * layer.input.shape[-1] * layer.units
    return 3 * forward


def _all_layers(model):
    for layer in model.layers:
        yield from _all_layers(layer) if hasattr(layer, "layers") else [layer]


def slice_repeated(count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` real training images and labels: the shipped slice's, repeated as needed."""
    from cifar_cnn.data.cifar10 import load_slice

    data = load_slice()
    repeats = -(-count // len(data.x_train))
    return (np.concatenate([data.x_train] * repeats)[:count],
            np.concatenate([data.y_train] * repeats)[:count])  # fmt: skip


def measure(model_name: str, setting: str, steps: int) -> float:
    """Runs inside the child process; returns images/s."""
    import keras

    import cifar_cnn  # noqa: F401
    from cifar_cnn.models import get_recipe, get_spec
    from training.train import (
        build_for_recipe,
        build_for_training,
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
    warmup = 2
    x, y = slice_repeated(recipe.batch_size * (steps + warmup))
    # The baseline is the model as its builder makes it; the others, as `cifar-train` trains it
    # (`training.fast_layers`).
    build = build_for_recipe if setting == "baseline" else build_for_training
    model = build(recipe, x)
    compile_for_phase(model, recipe, steps_per_epoch=steps + warmup, phase="main")
    n_warm = recipe.batch_size * warmup
    ends: list[float] = []  # when each timed batch finished
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter())
    )
    if setting == "baseline":
        one_hot = keras.utils.to_categorical(y, 10)
        model.fit(x[:n_warm], one_hot[:n_warm], batch_size=recipe.batch_size, verbose=0)
        model.fit(x[n_warm:], one_hot[n_warm:], batch_size=recipe.batch_size, verbose=0,
                  callbacks=[timer])  # fmt: skip
    else:
        pipeline = {"batch_size": recipe.batch_size, "augmentation": recipe.augmentation}
        model.fit(make_dataset(x[:n_warm], y[:n_warm], shuffle=True, **pipeline), verbose=0)
        train = make_dataset(x[n_warm:], y[n_warm:], shuffle=True, **pipeline)
        model.fit(train, verbose=0, callbacks=[timer])
    # The median time from one batch's end to the next: a stall at the start or end of a `fit`
    # call (up to 4 s here, now and then) is not a training step's.
    return recipe.batch_size / float(np.median(np.diff(ends)))


def child(*args: str, onednn: str = "1") -> float:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each setting (medians)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "conv":
            print(json.dumps(conv_peak(args.child[1])))
        elif args.child[0] == "flops":
            print(json.dumps(training_flops_per_image(args.child[1])))
        else:
            print(json.dumps(measure(args.child[0], args.child[1], args.steps)))
        return

    peak = {dtype: child("conv", dtype) for dtype in ("float32", "bfloat16")}
    print(f"3x3 convolution peak on this machine: float32 {peak['float32']:.0f}, bfloat16 "
          f"{peak['bfloat16']:.0f} GFLOP/s")  # fmt: skip
    print("| model | plain `model.fit` baseline, oneDNN off (images/s) | project pipeline, oneDNN "
          "off | project pipeline, oneDNN on (as `cifar-train` runs) | the same in bfloat16 "
          "| project / baseline | bfloat16 / float32 | share of conv peak, float32 | share of "
          "conv peak, bfloat16 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        runs: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
        for _ in range(args.rounds):  # interleaved: each round runs every setting once
            for setting, onednn in SETTINGS.items():
                runs[setting].append(child(name, setting, "--steps", str(args.steps),
                                           onednn=onednn))  # fmt: skip
        speed = {setting: float(np.median(values)) for setting, values in runs.items()}
        flops = child("flops", name)
        cells = " | ".join(f"{speed[s]:.0f}" for s in SETTINGS)
        share32 = speed["project"] * flops / 1e9 / peak["float32"]
        share16 = speed["bf16"] * flops / 1e9 / peak["bfloat16"]
        print(
            f"| {name} | {cells} | {speed['project'] / speed['baseline']:.2f} "
            f"| {speed['bf16'] / speed['project']:.2f} | {100 * share32:.0f}% "
            f"| {100 * share16:.0f}% |"
        )


if __name__ == "__main__":
    main()
