"""Where a training step's time goes, op by op, in float32 and in bfloat16 (TensorFlow's profiler).

    python bench/training_profile.py                      # resnet_fast, its recipe's batch (1,024)
    python bench/training_profile.py --model seed_cnn --steps 5
    python bench/training_profile.py --by-layer _MklNativeConv2DBackpropFilter  # per layer

Each precision runs in a fresh process (oneDNN on, as `cifar-train` runs): the recipe's model is
built and traced, then `--steps` training steps on real images (the shipped slice) are profiled.
TensorFlow's trace holds one event per executed op ("layer/op:OpType", inside the executor's own
"ExecutorState::Process" events, which are left out); their durations are summed per op type.
Two ops can run at once (one per core), so the shares are of the summed op time, and the wall
time per step is shown beside them. Prints a markdown table (docs/performance.md).
"""

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time


def profile(model_name: str, policy: str, steps: int) -> dict:
    """Runs inside the child process: {op type: milliseconds per step, "__wall__": ms/step}."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    from training_throughput import slice_repeated

    import cifar_cnn  # noqa: F401  (oneDNN on)
    from cifar_cnn.models import get_recipe
    from training.train import (
        build_for_training,
        compile_for_phase,
        make_dataset,
        set_mixed_precision,
    )

    recipe = get_recipe(model_name)
    # As `cifar-train` runs: in bfloat16 on a CPU, with XLA fusing the elementwise ops
    set_mixed_precision({"float32": "off", "mixed_bfloat16": "bf16"}[policy])
    x, y = slice_repeated(recipe.batch_size)
    model = build_for_training(recipe, x)
    compile_for_phase(model, recipe, steps, "main")
    images, labels = next(iter(make_dataset(x, y, recipe.batch_size, recipe.augmentation)))
    for _ in range(2):  # traced, and oneDNN's primitives created
        model.train_on_batch(images, labels)
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    wall = (time.perf_counter() - started) / steps
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    per_op: dict[str, float] = collections.Counter()
    per_layer: dict[str, float] = collections.Counter()  # "OpType layer" -> ms
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:  # "layer/op:OpType": one executed op
                    path, op_type = name.rsplit(":", 1)
                    per_op[op_type] += event.duration_ps / 1e9 / steps  # ms
                    per_layer[f"{op_type} {keras_layer(path, model.name)}"] += (
                        event.duration_ps / 1e9 / steps
                    )
    return {**per_op, "__wall__": 1000 * wall, "__layers__": per_layer}


def keras_layer(op_path: str, model_name: str) -> str:
    """The Keras layer an op belongs to: "gradient_tape/resnet_fast_1/group2_conv2_1/..." ->
    "group2_conv2" (the path component after the model's)."""
    parts = op_path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.startswith(model_name):
            return re.sub(r"_\d+$", "", parts[i + 1])
    return op_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet_fast")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=14, help="op types listed")
    parser.add_argument(
        "--by-layer", metavar="OP_TYPE", help="also list this op type's time layer by layer"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(profile(args.child[0], args.child[1], args.steps)))
        return

    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run(
            [sys.executable, __file__, "--child", args.model, policy, "--steps", str(args.steps)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[policy] = json.loads(out.stdout.strip().splitlines()[-1])
    walls = {p: r.pop("__wall__") for p, r in results.items()}
    layers = {p: r.pop("__layers__") for p, r in results.items()}
    totals = {p: sum(r.values()) for p, r in results.items()}
    ops = sorted(
        set(results["float32"]) | set(results["mixed_bfloat16"]),
        key=lambda op: -(results["float32"].get(op, 0) + results["mixed_bfloat16"].get(op, 0)),
    )
    print(f"{args.model}, one training step: wall {walls['float32']:.0f} ms in float32, "
          f"{walls['mixed_bfloat16']:.0f} ms in bfloat16 (op time summed over both cores: "
          f"{totals['float32']:.0f} and {totals['mixed_bfloat16']:.0f} ms)\n")  # fmt: skip
    print("| op type | float32 ms/step | share | bfloat16 ms/step | share |")
    print("|---|---:|---:|---:|---:|")
    for op in ops[: args.top]:
        cells = []
        for policy in ("float32", "mixed_bfloat16"):
            ms = results[policy].get(op, 0.0)
            cells += [f"{ms:.1f}", f"{100 * ms / totals[policy]:.1f}%"]
        print(f"| `{op}` | " + " | ".join(cells) + " |")
    rest = {p: totals[p] - sum(results[p].get(op, 0.0) for op in ops[: args.top]) for p in results}
    print(f"| all other op types | {rest['float32']:.1f} | "
          f"{100 * rest['float32'] / totals['float32']:.1f}% | {rest['mixed_bfloat16']:.1f} | "
          f"{100 * rest['mixed_bfloat16'] / totals['mixed_bfloat16']:.1f}% |")  # fmt: skip

    if args.by_layer:
        print(f"\n| layer: `{args.by_layer}` | float32 ms/step | bfloat16 ms/step | float32 / "
              "bfloat16 |")  # fmt: skip
        print("|---|---:|---:|---:|")
        prefix = f"{args.by_layer} "
        names = {k for r in layers.values() for k in r if k.startswith(prefix)}
        for key in sorted(names, key=lambda k: -layers["float32"].get(k, 0.0)):
            f32, bf16 = layers["float32"].get(key, 0.0), layers["mixed_bfloat16"].get(key, 0.0)
            ratio = f"{f32 / bf16:.1f}" if bf16 else "-"
            print(f"| {key[len(prefix) :]} | {f32:.1f} | {bf16:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
