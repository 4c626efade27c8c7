"""The exact GELU in a bfloat16 training step: Keras's (`tf.nn.gelu`) against
`training.fast_layers.gelu_by_erf`, on resnet_fast's activation maps (batch 1,024).

    python bench/gelu.py
    python bench/gelu.py --dtypes bfloat16 float32 --repeats 9

For each map, a forward pass alone and a forward and backward pass together, each a function
XLA compiles (as its auto-clustering fuses them in bfloat16 training, `training.train.
set_mixed_precision`), interleaved, median of `--repeats` calls after one that compiles. Prints a
markdown table per map and the sum over resnet_fast's seven GELUs, and the largest differences
of outputs and input gradients in units of the largest value. Here a forward and backward pass
compile together; in a training step they are separate clusters, so what the change saves per step
is `python bench/training_profile.py`'s figure, not this table's sum.
"""

import numpy as np
import tensorflow as tf
from timing import interleaved_medians_ms, relative_difference, ways_arguments

import cifar_cnn  # noqa: F401  (oneDNN on)
from training.fast_layers import gelu_by_erf

#: resnet_fast's GELUs: name, map size, channels, how many of that shape.
MAPS = [
    ("whiten_gelu", 31, 24, 1),
    ("group1_gelu1, group1_gelu2", 15, 64, 2),
    ("group2_gelu1, group2_gelu2", 7, 256, 2),
    ("group3_gelu1, group3_gelu2", 3, 256, 2),
]
WAYS = {"Keras": lambda x: tf.nn.gelu(x, approximate=False), "by erf": gelu_by_erf}


def forward(gelu):
    return tf.function(lambda x, d_y: gelu(x), jit_compile=True)


def forward_and_backward(gelu):
    def both(x, d_y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = gelu(x)
        return y, tape.gradient(y, x, d_y)

    return tf.function(both, jit_compile=True)


def main() -> None:
    args = ways_arguments(__doc__, ["bfloat16"])
    print("| dtype | GELU | map | Keras forward ms | by erf forward ms | Keras both ms "
          "| by erf both ms | Keras / by erf, both | difference: outputs, gradients |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for dtype in args.dtypes:
        totals = np.zeros(4)
        for name, size, channels, count in MAPS:
            shape = (args.batch, size, size, channels)
            x = tf.cast(rng.normal(size=shape).astype("float32"), dtype)
            d_y = tf.cast(rng.normal(size=shape).astype("float32"), dtype)
            functions = [make(gelu) for make in (forward, forward_and_backward)
                         for gelu in WAYS.values()]  # fmt: skip
            differences = [  # outputs, then input gradients
                relative_difference(by_erf, by_keras)
                for by_erf, by_keras in zip(functions[3](x, d_y), functions[2](x, d_y), strict=True)
            ]
            functions[0](x, d_y), functions[1](x, d_y)  # compiled
            ms = np.array(interleaved_medians_ms(functions, (x, d_y), args.repeats))
            totals += count * ms
            cells = [f"{m:.1f}" for m in ms] + [f"{ms[2] / ms[3]:.2f}"]
            row = [dtype, name, f"{size}x{size}x{channels}", *cells,
                   f"{differences[0]:.1e}, {differences[1]:.1e}"]  # fmt: skip
            print("| " + " | ".join(row) + " |", flush=True)
        cells = [f"**{m:.1f}**" for m in totals] + [f"**{totals[2] / totals[3]:.2f}**"]
        print("| " + " | ".join([dtype, "all seven, per step", "", *cells, ""]) + " |")


if __name__ == "__main__":
    main()
