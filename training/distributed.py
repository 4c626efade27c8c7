"""Data-parallel training on several workers with `tf.distribute.MultiWorkerMirroredStrategy`.

Every worker runs the same command with its own `TF_CONFIG` (see docs/training.md); worker 0 is
the chief:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \
        cifar-train --model resnet_fast --distributed

The global batch is the recipe's batch size times the number of replicas, and the learning rate
scales with it (the linear scaling rule). Gradients are all-reduced every step, so every worker
holds the same weights; BatchNorm's moving statistics are averaged across workers after each
epoch. Only the chief writes checkpoints into the run directory (which every worker must be able
to read, e.g. shared storage, to resume); the others write theirs to a temporary folder and
delete it. A worker that dies makes the others fail after `timeout_seconds` instead of hanging.

Keras 3's `model.fit` does not run under this strategy (keras-team/keras#20585), hence the small
custom loop below; it reuses the recipe's model, optimizer, schedule, loss and input pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.data.cifar10 import Cifar10, split_validation
from cifar_cnn.models import Recipe
from training.checkpoint import TrainingState
from training.train import (
    TrainResult,
    _plain_float32,
    build_for_training,
    compile_for_phase,
    lookahead_for,
    make_dataset,
    mixed_precision,
)

CHECKPOINTS = "distributed"


def make_strategy(timeout_seconds: float = 60) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy for this worker, from `TF_CONFIG`; collectives give up after the timeout."""
    if "TF_CONFIG" not in os.environ:
        raise ValueError("--distributed needs TF_CONFIG naming the cluster and this worker's task")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def train_distributed(
    recipe: Recipe,
    data: Cifar10,
    run_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train `recipe` data-parallel across the cluster in `TF_CONFIG`, resuming from the chief's
    last checkpoint in `run_dir`. Returns the final weights (on every worker)."""
    with mixed_precision(recipe.mixed_precision) as precision:
        return _train_epochs(recipe, data, run_dir, strategy or make_strategy(), verbose, precision)


def _train_epochs(
    recipe: Recipe,
    data: Cifar10,
    run_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy,
    verbose: bool,
    precision: str,
) -> TrainResult:
    """`train_distributed`'s run, under the precision policy already set."""
    replicas = strategy.num_replicas_in_sync
    chief = is_chief(strategy)
    scaled = dataclasses.replace(
        recipe,
        batch_size=recipe.batch_size * replicas,
        learning_rate=recipe.learning_rate * replicas,
        fine_tune_learning_rate=recipe.fine_tune_learning_rate * replicas,
    )
    if recipe.head_epochs:
        raise ValueError("distributed training does not do the two-phase transfer recipe yet")
    if recipe.teacher:
        raise ValueError("distributed training does not distil (--teacher) yet")
    keras.utils.set_random_seed(recipe.seed)
    x_train, y_train, x_val, y_val = split_validation(
        data.x_train, data.y_train, recipe.validation_fraction, seed=recipe.split_seed
    )
    steps_per_epoch = int(np.ceil(len(x_train) / scaled.batch_size))
    train_ds = make_dataset(
        x_train, y_train, scaled.batch_size, recipe.augmentation, shuffle=True, seed=recipe.seed
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Repeated, and iterated by one iterator for the whole run, as `fit` does in `train`.
    train_ds = strategy.experimental_distribute_dataset(train_ds.repeat().with_options(options))

    with strategy.scope():
        model = build_for_training(recipe, x_train)
        compile_for_phase(model, scaled, steps_per_epoch, "main")
        optimizer, loss_fn = model.optimizer, model.loss
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    run_dir = Path(run_dir)
    shared = run_dir / CHECKPOINTS
    own = shared if chief else Path(tempfile.mkdtemp(prefix="cifar-worker-"))
    latest = tf.train.latest_checkpoint(shared)
    if latest:
        checkpoint.restore(latest)
        if int(epoch.numpy()) >= recipe.epochs:
            raise ValueError(
                f"{run_dir} already holds {int(epoch.numpy())} distributed epochs; ask for more "
                f"--epochs to continue, or choose another --run-dir"
            )
        print(f"Resuming {run_dir} from epoch {int(epoch.numpy())} ({latest})", flush=True)
    if recipe.patience:
        print("Note: early stopping (patience) is not applied in distributed runs", flush=True)
    manager = tf.train.CheckpointManager(checkpoint, own, max_to_keep=2)
    per_example = keras.losses.CategoricalCrossentropy(
        label_smoothing=recipe.label_smoothing, reduction="none"
    )

    @tf.function
    def train_step(batch):
        def replica_step(images, labels):
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                loss = tf.nn.compute_average_loss(
                    per_example(labels, probabilities), global_batch_size=scaled.batch_size
                )
                # Under float16 the compiled optimizer is a LossScaleOptimizer: it unscales the
                # gradients of the scaled loss (a no-op for other precisions).
                scaled_loss = optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled_loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    del loss_fn  # the per-example loss above is the compiled one without its reduction
    statistics = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]

    @tf.function
    def average_moving_statistics():
        # Each replica updated BatchNorm's moving averages from its own batches: make them the
        # cross-worker mean, so every worker ends with the same model.
        for variable in statistics:
            local = strategy.run(lambda v=variable: tf.identity(v.value))
            variable.assign(strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None))

    # The chief saves the run's state (its history) beside the checkpoints before each one, so
    # a resumed run reports training time and speed over all its epochs.
    restored = int(epoch.numpy())
    state = (TrainingState.load(shared) if latest else None) or TrainingState()
    state.recipe = recipe.to_dict()
    state.history = [h for h in state.history if h["epoch"] <= restored]  # may be one ahead
    if len(state.history) != restored:
        warnings.warn(
            f"the saved history covers {len(state.history)} of the {restored} restored epochs; "
            "the run's time and speed figures cover only the epochs it lists",
            stacklevel=2,
        )
    history = state.history
    # The recipe's Lookahead, driven as `fit` drives the callback; every worker holds the same
    # weights, so every worker's moving average is the same too.
    lookahead = lookahead_for(scaled, steps_per_epoch)
    if lookahead is not None:
        lookahead.set_model(model)
        lookahead.on_train_begin()
    batches = iter(train_ds)
    for current in range(restored, recipe.epochs):
        started = time.perf_counter()
        total = 0.0
        for step in range(steps_per_epoch):
            total += float(train_step(next(batches)))
            if lookahead is not None:
                lookahead.on_train_batch_end(step)
        average_moving_statistics()
        if lookahead is not None:
            # The averaged BatchNorm statistics differ from each worker's own: the moving
            # average starts from them, as it starts from the weights after a checkpoint.
            lookahead.on_train_begin()
        probabilities = model.predict(x_val, batch_size=500, verbose=0)
        val_accuracy = float(np.mean(probabilities.argmax(1) == y_val))
        epoch.assign(current + 1)
        seconds = time.perf_counter() - started
        history.append(
            {
                "epoch": current + 1,
                "loss": total / steps_per_epoch,
                "val_accuracy": val_accuracy,
                "seconds": round(seconds, 2),
                "images_per_second": round(len(x_train) / seconds, 1),
                "replicas": replicas,
                "pid": os.getpid(),
            }  # fmt: skip
        )
        if chief:
            shared.mkdir(parents=True, exist_ok=True)
            state.epoch = current + 1
            state.save(shared)
        manager.save(checkpoint_number=current + 1)
        if verbose:
            print(json.dumps(history[-1]), flush=True)
    if not chief:
        shutil.rmtree(own, ignore_errors=True)
    state.epoch = recipe.epochs
    state.finished = True
    # The weights returned are the last epoch's (no best-epoch copy is kept across workers),
    # so the recorded validation accuracy is the last epoch's too.
    state.best_epoch, state.best_val_accuracy = recipe.epochs, history[-1]["val_accuracy"]
    model = _plain_float32(model, recipe, x_train)
    speeds = [h["images_per_second"] for h in history]
    return TrainResult(
        model=model,
        state=state,
        val_accuracy=history[-1]["val_accuracy"],
        images_per_second=float(np.median(speeds)) if speeds else 0.0,
        train_seconds=float(sum(h["seconds"] for h in history)),
        precision=precision,
    )
