"""Train a model from a recipe, resumably: `train(recipe, data, run_dir)`.

Rerunning the same command after an interruption (even `kill -9` mid-epoch) continues from the last
finished epoch: same weights, same optimizer state and step counter, same history. Asked for more
epochs, a finished run trains on the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.data.augmentation import build_augmentation
from cifar_cnn.data.cifar10 import NUM_CLASSES, Cifar10, kfold_indices, split_validation
from cifar_cnn.models import Recipe, create_model, get_spec
from training.checkpoint import (
    BEST_WEIGHTS,
    TrainingState,
    atomic_save_weights,
    restore_checkpoint,
    save_checkpoint,
)
from training.distill import Teacher, distillation_targets
from training.fast_layers import with_fast_layers
from training.lookahead import Lookahead
from training.schedules import build_schedule


@dataclass
class TrainResult:
    model: keras.Model
    state: TrainingState
    val_accuracy: float  # of the weights returned (the best epoch)
    images_per_second: float  # median over epochs
    train_seconds: float
    precision: str = "float32"  # the Keras dtype policy the model trained under
    precision_choice: dict | None = None  # how "auto" chose it here (`resolve_precision`)
    teacher: dict | None = None  # distillation's teacher (`training.distill.Teacher.record`)


PRECISION_POLICIES = {"off": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}


def cpu_bfloat16(cpuinfo: str | None = None) -> str:
    """How this CPU computes bfloat16, per /proc/cpuinfo (or the `cpuinfo` text given): "AMX"
    (Intel's matrix tiles, with AVX512-BF16 beside them), "AVX512-BF16" (vector instructions
    only) or "none"."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        return "none"
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else "none"


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (Intel AMX or AVX512-BF16).

    Without it TensorFlow emulates bfloat16, which is slower than float32."""
    return cpu_bfloat16() != "none"


#: bfloat16 must train this much faster than float32 in the probe to be chosen: identical runs
#: differ by 10-20% on shared machines, and a wrong choice costs a whole run.
BF16_MIN_GAIN = 1.15
#: The probe costs about a minute (two models traced, then timed): shorter runs keep float32.
PROBE_MIN_STEPS = 500


def resolve_precision(
    mode: str, probe: Callable[[], dict[str, float]], total_steps: int
) -> tuple[str, dict[str, Any] | None]:
    """What "auto" means on this machine, and the evidence: float16 on a GPU; on a CPU with
    native bfloat16 (AMX or AVX512-BF16) and a run of at least `PROBE_MIN_STEPS` steps, bfloat16
    if the `probe` ({policy: images/s}) measures it `BF16_MIN_GAIN` times faster than float32;
    float32 otherwise. Other modes are returned as given."""
    if mode != "auto":
        return mode, None
    if tf.config.list_physical_devices("GPU"):
        return "fp16", None
    if not cpu_has_native_bfloat16() or total_steps < PROBE_MIN_STEPS:
        return "off", None
    speeds = probe()
    gain = speeds["mixed_bfloat16"] / speeds["float32"]
    choice = "bf16" if gain >= BF16_MIN_GAIN else "off"
    evidence = {
        "images_per_second": {policy: round(speed, 1) for policy, speed in speeds.items()},
        "bfloat16_gain": round(gain, 3),
        "rule": f"bfloat16 when it trains at least {BF16_MIN_GAIN}x as fast as float32",
    }
    print(
        f"Precision: bfloat16 trains {gain:.2f}x as fast as float32 here "
        f"({speeds['mixed_bfloat16']:.0f} against {speeds['float32']:.0f} images/s): "
        f"{'bfloat16' if choice == 'bf16' else 'float32'}"
    )
    return choice, evidence


def probe_step_speeds(
    recipe: Recipe, x: np.ndarray, y: np.ndarray, steps: int = 3, rounds: int = 3
) -> dict[str, float]:
    """Training images/s of `recipe`'s model in float32 and in bfloat16 on this machine: each
    built and traced once, then `steps` batches timed in `rounds` interleaved rounds (medians),
    since identical runs here differ by up to 1.8x. Leaves the float32 policy set."""
    images, labels = next(iter(make_dataset(x, y, recipe.batch_size, recipe.augmentation)))
    models = {}
    for mode in ("off", "bf16"):  # each traced under its own setting, before timing
        with mixed_precision(mode) as policy:
            models[policy] = build_for_training(recipe, x)
            compile_for_phase(models[policy], recipe, steps, "main")
            models[policy].train_on_batch(images, labels)
    seconds: dict[str, list[float]] = {policy: [] for policy in models}
    for _ in range(rounds):
        for policy, model in models.items():
            started = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(images, labels)
            seconds[policy].append(time.perf_counter() - started)
    return {p: steps * len(images) / float(np.median(s)) for p, s in seconds.items()}


@contextlib.contextmanager
def mixed_precision(mode: str) -> Iterator[str]:
    """`set_mixed_precision(mode)` for the block (yields the policy's name); afterwards, also
    when the block fails or is interrupted, the process is back in float32."""
    try:
        yield set_mixed_precision(mode)
    finally:
        set_mixed_precision("off")


def set_mixed_precision(mode: str) -> str:
    """Apply a mixed-precision policy ("off", "bf16", "fp16"; "auto" as `resolve_precision`
    decides without a probe) and return its name. Variables stay float32 either way; `train`
    returns a float32 model.

    bfloat16 on a CPU also turns on XLA's auto-clustering, restricted to elementwise ops (see
    `training/__init__.py`), for the functions traced from here on. With AMX the convolutions get
    so fast that the ops between them (GELU, BatchNorm, casts: one memory pass each, bfloat16
    emulated by Eigen) took 1,576 of resnet_fast's 2,477 ms of op time per step; fused, its
    bfloat16 step went from 1,657 to 1,325 ms on the AMX Xeon (`bench/training_profile.py`,
    docs/performance.md). Whole-model XLA was slower (issue #21), so XLA gets only what lies
    between the convolutions, and BatchNorm runs as oneDNN's fused kernels instead
    (`build_for_training`). Any other mode turns the clustering off."""
    on_cpu = not tf.config.list_physical_devices("GPU")
    if mode == "auto":
        mode = "off" if on_cpu else "fp16"
    if mode not in PRECISION_POLICIES:
        raise ValueError(f"unknown mixed precision {mode!r}; choose auto, off, bf16 or fp16")
    if mode == "bf16" and on_cpu and not cpu_has_native_bfloat16():
        print("Note: this CPU has no native bfloat16; it will be emulated, slowly")
    policy = PRECISION_POLICIES[mode]
    keras.mixed_precision.set_global_policy(policy)
    tf.config.optimizer.set_jit("autoclustering" if mode == "bf16" and on_cpu else False)
    return policy


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    augmentation: str = "none",
    shuffle: bool = False,
    seed: int = 0,
    teacher: np.ndarray | None = None,
    teacher_weight: float | None = None,
) -> tf.data.Dataset:
    """uint8 images and integer labels to batches of (uint8 images, targets): one-hot labels, or
    with a `teacher`'s probabilities for the same images (N, 10), `(1 - teacher_weight) * one-hot
    + teacher_weight * teacher` (see training.distill)."""
    if (teacher is None) != (teacher_weight is None):
        raise ValueError("a teacher's probabilities and teacher_weight go together")
    columns = (x, y) if teacher is None else (x, y, teacher)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    augment = build_augmentation(augmentation, seed=seed)

    def prepare(images, labels, taught=None):
        if augment is not None:
            images = augment(tf.cast(images, "float32"), training=True)
            images = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
        targets = tf.one_hot(labels, NUM_CLASSES)
        if taught is not None:
            targets = (1.0 - teacher_weight) * targets + teacher_weight * taught
        return images, targets

    # Without tf.data's autotuning: its optimisation thread sleeps between rounds (for up to a
    # minute as a run goes on) and an iterator's destructor waits for it to wake. Keras's
    # `evaluate` drops its iterator every epoch, so most epochs of a run stalled for 8-37 s with
    # both cores idle (docs/performance.md, "Slow epochs"). Map and prefetch keep their defaults.
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(options)


def build_for_recipe(recipe: Recipe, x_train: np.ndarray) -> keras.Model:
    """The recipe's untrained model: its options, plus those its spec fits to the training
    images (such as resnet_fast's whitening filters)."""
    spec = get_spec(recipe.model)
    fitted = spec.fitted_options(x_train) if spec.fitted_options else {}
    return create_model(recipe.model, **{**fitted, **recipe.model_options})


def build_for_training(recipe: Recipe, x_train: np.ndarray) -> keras.Model:
    """`build_for_recipe`'s model as it trains: BatchNorm as oneDNN's fused kernels, small bfloat16
    convolutions' kernel gradients as matrix products, bfloat16 GELUs through erf
    (`training.fast_layers`), with the same weights. `train` saves the plain model."""
    return with_fast_layers(build_for_recipe(recipe, x_train))


def lookahead_for(recipe: Recipe, steps_per_epoch: int) -> Lookahead | None:
    """The recipe's Lookahead (one rule for the single-process and the distributed loop)."""
    if not recipe.lookahead:
        return None
    return Lookahead(steps_per_epoch * recipe.epochs, steps_per_epoch)


def _backbone(model: keras.Model) -> keras.Model | None:
    try:
        return model.get_layer("backbone")
    except ValueError:
        return None


def compile_for_phase(model: keras.Model, recipe: Recipe, steps_per_epoch: int, phase: str) -> None:
    """Compile for the "head" phase (backbone frozen) or the "main" phase (everything trains)."""
    backbone = _backbone(model)
    if backbone is not None:
        backbone.trainable = phase != "head"
    if phase == "head":
        lr, epochs = recipe.learning_rate, recipe.head_epochs
    elif recipe.head_epochs > 0:
        lr, epochs = recipe.fine_tune_learning_rate, recipe.epochs - recipe.head_epochs
    else:
        lr, epochs = recipe.learning_rate, recipe.epochs
    schedule = build_schedule(recipe.schedule, lr, steps_per_epoch, epochs, recipe.restart_epochs)
    if recipe.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            schedule,
            momentum=recipe.momentum,
            nesterov=True,
            weight_decay=recipe.weight_decay or None,
        )
    elif recipe.optimizer in ("adam", "adamw"):
        cls = keras.optimizers.AdamW if recipe.optimizer == "adamw" else keras.optimizers.Adam
        kwargs = {"weight_decay": recipe.weight_decay} if recipe.weight_decay else {}
        optimizer = cls(schedule, **kwargs)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose sgd, adam or adamw")
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    # Build the optimizer now so a checkpoint's variables can be restored before the first step.
    optimizer.build(model.trainable_variables)


def phase_of(recipe: Recipe, epoch: int) -> str:
    return "head" if epoch < recipe.head_epochs else "main"


class _EpochBookkeeper(keras.callbacks.Callback):
    """Per epoch: timing, history, best weights, early stopping and a crash-safe checkpoint."""

    def __init__(self, run_dir: Path, state: TrainingState, recipe: Recipe, n_train: int):
        super().__init__()
        self.run_dir, self.state, self.recipe, self.n_train = run_dir, state, recipe, n_train

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        optimizer = self.model.optimizer
        record = {k: float(v) for k, v in (logs or {}).items()}
        record.update(
            epoch=epoch + 1,
            learning_rate=float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            seconds=round(seconds, 2),
            images_per_second=round(self.n_train / seconds, 1),
            pid=os.getpid(),
        )
        state = self.state
        state.history.append(record)
        state.epoch = epoch + 1
        val_accuracy = record.get("val_accuracy", -1.0)
        if val_accuracy > state.best_val_accuracy:
            state.best_val_accuracy, state.best_epoch = val_accuracy, epoch + 1
            atomic_save_weights(self.model, self.run_dir / BEST_WEIGHTS)
        if state.out_of_patience(self.recipe.patience):
            print(f"Early stopping: no val_accuracy gain for {self.recipe.patience} epochs")
            state.finished = True
            self.model.stop_training = True
        save_checkpoint(self.run_dir, self.model, state)


def train(
    recipe: Recipe,
    data: Cifar10,
    run_dir: str | os.PathLike,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    verbose: int | str = "auto",
) -> TrainResult:
    """Train `recipe` on `data.x_train` (minus a validation split), resuming from `run_dir` if it
    holds an unfinished run of the same recipe. Returns the best-validation-accuracy weights."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if validation is None:
        x_train, y_train, x_val, y_val = split_validation(
            data.x_train, data.y_train, recipe.validation_fraction, seed=recipe.split_seed
        )
    else:
        (x_train, y_train), (x_val, y_val) = (data.x_train, data.y_train), validation
    state = TrainingState.load(run_dir) or TrainingState(recipe=_comparable(recipe))
    if state.recipe is not None:
        changed = _changed_fields(state.recipe, recipe)
        if changed:
            raise ValueError(
                f"{run_dir} holds a run with a different recipe ({', '.join(changed)} changed); "
                f"rerun with the same flags to resume, or choose another --run-dir"
            )
        if state.epoch > recipe.epochs:  # its model folder would claim fewer than it had
            raise ValueError(
                f"{run_dir} holds a run of {state.epoch} epochs, more than the "
                f"{recipe.epochs} asked for; choose another --run-dir"
            )
        stopped_early = state.out_of_patience(recipe.patience)
        if state.finished and state.epoch < recipe.epochs and not stopped_early:
            state.finished = False  # asked for more epochs, a finished run trains on
    teacher = None
    if recipe.teacher:
        if validation is not None:
            raise ValueError("distillation (--teacher) needs the recipe's validation split")
        teacher = distillation_targets(recipe, data, x_train, run_dir)
    total_steps = recipe.epochs * int(np.ceil(len(x_train) / recipe.batch_size))
    mode, precision_choice = resolve_precision(
        recipe.mixed_precision,
        lambda: probe_step_speeds(recipe, x_train, y_train),
        total_steps,
    )
    keras.utils.set_random_seed(recipe.seed)  # after the probe: the run itself is reproducible
    with mixed_precision(mode) as precision:
        model = _fit(recipe, run_dir, state, x_train, y_train, x_val, y_val, teacher, verbose)
    model = _plain_float32(model, recipe, x_train)
    speeds = [h["images_per_second"] for h in state.history]
    return TrainResult(
        model=model,
        state=state,
        val_accuracy=state.best_val_accuracy,
        images_per_second=float(np.median(speeds)) if speeds else 0.0,
        train_seconds=float(sum(h["seconds"] for h in state.history)),
        precision=precision,
        precision_choice=precision_choice,
        teacher=None if teacher is None else teacher.record,
    )


def _fit(
    recipe: Recipe,
    run_dir: Path,
    state: TrainingState,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    teacher: Teacher | None,
    verbose: int | str,
) -> keras.Model:
    """`train`'s epochs, under the precision policy already set, recorded in `state` and
    `run_dir`: returns the model with the best validation weights (in that policy)."""
    train_ds = make_dataset(
        x_train, y_train, recipe.batch_size, recipe.augmentation, shuffle=True, seed=recipe.seed,
        teacher=None if teacher is None else teacher.probabilities,
        teacher_weight=None if teacher is None else recipe.teacher_weight,
    )  # fmt: skip
    val_ds = make_dataset(x_val, y_val, max(recipe.batch_size, 500))
    steps_per_epoch = int(np.ceil(len(x_train) / recipe.batch_size))
    # Repeated, so `fit` keeps one training iterator for the whole run rather than making and
    # dropping one every epoch (dropping one used to stall; see `make_dataset`); each repetition
    # still reshuffles. Validation needs no such care: Keras's `evaluate` drops its iterator anyway.
    train_ds = train_ds.repeat()

    model = build_for_training(recipe, x_train)
    # Compile as the checkpoint was written (the phase of its last epoch), so its optimizer
    # state fits; the loop below recompiles when the next phase begins.
    compiled_phase = phase_of(recipe, max(0, state.epoch - 1))
    compile_for_phase(model, recipe, steps_per_epoch, compiled_phase)
    if state.checkpoint:
        restore_checkpoint(run_dir, model, state)
        print(f"Resuming {run_dir} from epoch {state.epoch} (checkpoint {state.checkpoint})")
    if verbose == "auto":
        verbose = 1 if os.isatty(1) else 2
    callbacks: list[keras.callbacks.Callback] = [
        _EpochBookkeeper(run_dir, state, recipe, len(x_train))
    ]
    lookahead = lookahead_for(recipe, steps_per_epoch)
    if lookahead is not None:
        callbacks.append(lookahead)

    for end, phase in ((recipe.head_epochs, "head"), (recipe.epochs, "main")):
        if state.finished or state.epoch >= end:
            continue
        if phase != compiled_phase:
            compile_for_phase(model, recipe, steps_per_epoch, phase)
            compiled_phase = phase
            print(f"Fine-tuning the whole model from epoch {state.epoch + 1}")
        model.fit(
            train_ds,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            epochs=end,
            initial_epoch=state.epoch,
            callbacks=callbacks,
            shuffle=False,  # the dataset reshuffles itself every epoch
            verbose=verbose,
        )
    if not state.finished:
        state.finished = True
        state.save(run_dir)

    if (run_dir / BEST_WEIGHTS).exists():
        with warnings.catch_warnings():
            # Best weights from an earlier phase carry that phase's optimizer: Keras warns and
            # skips it, which is what we want (only the model weights matter from here).
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(run_dir / BEST_WEIGHTS)
    return model


def _plain_float32(model: keras.Model, recipe: Recipe, x_train: np.ndarray) -> keras.Model:
    """The recipe's plain model (Keras's own layers, float32 policy) with `model`'s trained
    weights: what is saved, so it computes (and evaluates) in float32 on any machine, whatever
    the precision and kernels it trained with. Restores the float32 policy."""
    set_mixed_precision("off")
    float32_model = build_for_recipe(recipe, x_train)
    float32_model.set_weights(model.get_weights())
    return float32_model


def _comparable(recipe: Recipe) -> dict:
    """The recipe fields a resumed run must share with the original (more epochs are allowed)."""
    fields = recipe.to_dict()
    for extendable in ("epochs", "patience"):
        fields.pop(extendable)
    return json.loads(json.dumps(fields))  # as it reads back from state.json


def _changed_fields(saved: dict, recipe: Recipe) -> list[str]:
    """The fields in which a run's saved recipe differs from `recipe`; a field the saved recipe
    lacks (added to `Recipe` since) counts as its default, which is what that run trained with."""
    defaults = _comparable(Recipe(model=recipe.model))
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    return sorted(k for k, v in _comparable(recipe).items() if saved.get(k) != v)


def cross_validate(recipe: Recipe, data: Cifar10, run_dir: str | os.PathLike, folds: int) -> dict:
    """Stratified k-fold on the training set: best val accuracy per fold, mean and std."""
    run_dir = Path(run_dir)
    scores = []
    for k, (train_idx, val_idx) in enumerate(kfold_indices(data.y_train, folds, recipe.split_seed)):
        fold = Cifar10(
            data.x_train[train_idx], data.y_train[train_idx], data.x_test, data.y_test, data.source
        )
        result = train(
            recipe,
            fold,
            run_dir / f"fold-{k + 1}",
            validation=(data.x_train[val_idx], data.y_train[val_idx]),
        )
        scores.append(result.val_accuracy)
        print(f"fold {k + 1}/{folds}: val_accuracy {result.val_accuracy:.4f}")
    return {
        "folds": folds,
        "val_accuracy": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores, ddof=1)) if folds > 1 else 0.0,
    }
