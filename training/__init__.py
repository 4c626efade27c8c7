"""Training recipes and the command lines (`cifar-train`, `cifar-evaluate`, `cifar-push`, ...)."""

import os

# Read by TensorFlow when it first optimises a function, so set before anything runs. They change
# nothing unless XLA's auto-clustering is on, which training turns on only in bfloat16 on a CPU
# (`training.train.set_mixed_precision`): then XLA fuses the elementwise ops (point-wise ops,
# reductions, shape ops) and leaves convolutions, pooling, matmuls and BatchNorm to oneDNN
# (`training.fast_layers`: XLA's own BatchNorm is what was slow, docs/performance.md). A user's
# own --tf_xla_ops_to_cluster stands.
_XLA_FUSION_FLAGS = "--tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=PW,RED,PWRED,MISC"
if "tf_xla_ops_to_cluster" not in os.environ.get("TF_XLA_FLAGS", ""):
    os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} {_XLA_FUSION_FLAGS}".strip()
