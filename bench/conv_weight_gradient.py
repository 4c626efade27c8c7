"""A 3x3 convolution's kernel gradient: oneDNN's kernel against nine matrix products, on
resnet_fast's shapes (batch 1,024), in bfloat16 and float32.

    python bench/conv_weight_gradient.py
    python bench/conv_weight_gradient.py --dtypes bfloat16 --repeats 9

For each layer, `Conv2DBackpropFilter` (oneDNN on) and `training.fast_layers.
kernel_gradient_by_matmuls` on the same random activations and output gradients, interleaved,
median of `--repeats` calls after one that traces; prints a markdown table with GFLOP/s and the
largest difference relative to the gradient's largest value. `training.fast_layers.
MATMUL_GRADIENT_MAX_SIZE` is set from this table.
"""

import numpy as np
import tensorflow as tf
from timing import interleaved_medians_ms, relative_difference, ways_arguments

import cifar_cnn  # noqa: F401  (oneDNN on)
from training.fast_layers import kernel_gradient_by_matmuls

#: resnet_fast's 3x3 convolutions: name, map size, channels in, channels out.
LAYERS = [
    ("group1_conv1", 31, 24, 64),
    ("group1_conv2", 15, 64, 64),
    ("group2_conv1", 15, 64, 256),
    ("group2_conv2", 7, 256, 256),
    ("group3_conv1", 7, 256, 256),
    ("group3_conv2", 3, 256, 256),
]


def onednn(x, dy):
    return tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=[3, 3, x.shape[-1], dy.shape[-1]], out_backprop=dy,
        strides=[1, 1, 1, 1], padding="SAME",
    )  # fmt: skip


def matmuls(x, dy):
    return kernel_gradient_by_matmuls(x, dy, (3, 3, x.shape[-1], dy.shape[-1]))


def main() -> None:
    args = ways_arguments(__doc__, ["bfloat16", "float32"])
    print("| dtype | layer | map | channels | oneDNN ms (GFLOP/s) | matmuls ms (GFLOP/s) "
          "| oneDNN / matmuls | difference |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for dtype in args.dtypes:
        for name, size, c_in, c_out in LAYERS:
            x = tf.cast(rng.normal(size=(args.batch, size, size, c_in)).astype("float32"), dtype)
            dy = tf.cast(rng.normal(size=(args.batch, size, size, c_out)).astype("float32"), dtype)
            ways = [tf.function(onednn), tf.function(matmuls)]
            difference = relative_difference(ways[1](x, dy), ways[0](x, dy))  # and traced
            ms = interleaved_medians_ms(ways, (x, dy), args.repeats)
            flop = 2 * args.batch * size * size * c_in * c_out * 9
            cells = [f"{m:.1f} ({flop / m / 1e6:.0f})" for m in ms]
            row = [dtype, name, f"{size}x{size}", f"{c_in} to {c_out}", *cells,
                   f"{ms[0] / ms[1]:.2f}", f"{difference:.1e}"]  # fmt: skip
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
