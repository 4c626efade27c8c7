"""training: recipes, schedules, the resumable training loop, k-fold and the two transfer phases."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar_cnn.data.cifar10 import SLICE_PATH, Cifar10
from cifar_cnn.models import get_recipe, get_spec, list_models
from training import fast_layers
from training.cli import build_train_parser, recipe_from_args, train_main
from training.schedules import OneCycle
from training.train import cross_validate, make_dataset, train


def first_images(data: Cifar10, n: int) -> Cifar10:
    """The first `n` training images of the slice (and its test set): a fast training set."""
    return Cifar10(data.x_train[:n], data.y_train[:n], data.x_test, data.y_test, "slice")


def test_every_model_has_a_recipe_and_flags_override_it():
    assert all(get_spec(name).recipe.model == name for name in list_models())
    args = build_train_parser().parse_args(
        ["--model", "resnet_fast", "--epochs", "3", "--learning-rate", "0.5", "--lookahead", "no",
         "--model-option", "bn_epsilon=1e-3", "--model-option", "widths=[32, 64, 64]"]
    )  # fmt: skip
    recipe = recipe_from_args(args)
    assert (recipe.epochs, recipe.learning_rate, recipe.lookahead) == (3, 0.5, False)
    assert recipe.batch_size == get_recipe("resnet_fast").batch_size
    # Options given replace the recipe's own; the others stay.
    assert recipe.model_options == {"bias_lr_scale": 64, "bn_epsilon": 1e-3, "widths": [32, 64, 64]}
    with pytest.raises(ValueError, match="unknown recipe fields: epoch"):
        get_recipe("seed_cnn", epoch=3)
    with pytest.raises(SystemExit):
        build_train_parser().parse_args(["--model", "seed_cnn", "--model-option", "no-equals"])


def test_one_cycle_warms_up_then_decays_linearly():
    schedule = OneCycle(peak=2.0, total_steps=100, warmup_fraction=0.25, start=0.2, end=0.1)
    values = [float(schedule(step)) for step in (0, 25, 100, 1000)]
    assert values == pytest.approx([0.4, 2.0, 0.2, 0.2])
    restored = OneCycle.from_config(schedule.get_config())
    assert float(restored(60)) == pytest.approx(float(schedule(60)))


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_resumes_from_the_checkpoint(slice_data, tmp_path):
    small = first_images(slice_data, 300)
    np.savez(tmp_path / "small.npz", x_train=small.x_train, y_train=small.y_train,
             x_test=small.x_test[:10], y_test=small.y_test[:10])  # fmt: skip
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "training", "--model", "seed_cnn",
        "--data", str(tmp_path / "small.npz"), "--epochs", "3", "--batch-size", "32",
        "--run-dir", str(run_dir), "--output", str(tmp_path / "model"), "--no-evaluate",
    ]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state_file = run_dir / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1:
            break
        assert first.poll() is None, first.stdout.read().decode()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = json.loads(state_file.read_text())
    assert 1 <= killed_at["epoch"] < 3, "the run must be killed part-way"
    checkpoint = run_dir / killed_at["checkpoint"] / "model.weights.h5"

    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"Resuming {run_dir} from epoch {killed_at['epoch']}" in second.stdout

    final = json.loads(state_file.read_text())
    epochs = [h["epoch"] for h in final["history"]]
    assert epochs == [1, 2, 3]
    # The epochs before the kill were run once, by the first process, and kept as they were;
    # the second process ran only the rest.
    assert final["history"][: killed_at["epoch"]] == killed_at["history"]
    pids = {h["pid"] for h in final["history"][killed_at["epoch"] :]}
    assert pids.isdisjoint({h["pid"] for h in killed_at["history"]})
    assert not checkpoint.exists()  # replaced by later checkpoints, not left behind
    assert not list(run_dir.glob("checkpoints/.*"))  # no half-written checkpoint remains


def checkpoint_contents(path) -> tuple[int, list[np.ndarray]]:
    """The optimizer step and the model arrays stored in a checkpoint's weights file."""
    arrays = []
    with h5py.File(path) as weights:
        weights["layers"].visititems(
            lambda _, item: (
                arrays.append(np.asarray(item)) if isinstance(item, h5py.Dataset) else None
            )
        )
        return int(np.asarray(weights["optimizer/vars/0"])), arrays


@pytest.mark.slow
def test_a_finished_run_asked_for_more_epochs_trains_on_from_its_checkpoint(slice_data, tmp_path):
    small = first_images(slice_data, 300)
    first = train(get_recipe("seed_cnn", epochs=2, batch_size=100), small, tmp_path, verbose=0)
    step, weights = checkpoint_contents(tmp_path / first.state.checkpoint / "model.weights.h5")
    assert step == 2 * 3  # two epochs of three steps (270 training images, batch 100)

    resumed = train(get_recipe("seed_cnn", epochs=3, batch_size=100), small, tmp_path, verbose=0)
    assert [h["epoch"] for h in resumed.state.history] == [1, 2, 3]
    step, later = checkpoint_contents(tmp_path / resumed.state.checkpoint / "model.weights.h5")
    assert step == 3 * 3  # the step counter went on from 6 rather than restarting at 0
    assert any(not np.array_equal(a, b) for a, b in zip(weights, later, strict=True))

    # Going on needs the same recipe: another is refused, naming what changed, and so are
    # fewer epochs than the run already has.
    with pytest.raises(ValueError, match="different recipe \\(batch_size, learning_rate changed"):
        train(get_recipe("seed_cnn", epochs=4, batch_size=25, learning_rate=0.1), small, tmp_path)
    with pytest.raises(ValueError, match="holds a run of 3 epochs, more than the 2 asked for"):
        train(get_recipe("seed_cnn", epochs=2, batch_size=100), small, tmp_path)


def test_early_stopping_ends_a_run_after_patience_epochs_without_a_better_score():
    from training.checkpoint import TrainingState

    state = TrainingState(epoch=5, best_epoch=3)
    assert state.out_of_patience(2) and not state.out_of_patience(3)
    assert not state.out_of_patience(0)  # 0: early stopping is off


def test_transfer_trains_the_head_first_then_fine_tunes(slice_data, mobilenet_weights, tmp_path):
    small = first_images(slice_data, 128)
    recipe = get_recipe(
        "mobilenet_transfer", epochs=1, head_epochs=1, batch_size=64,
        model_options={"input_size": 32, "backbone_weights": str(mobilenet_weights)},
    )  # fmt: skip
    head_only = train(recipe, small, tmp_path, verbose=0)
    backbone = head_only.model.get_layer("backbone")
    original = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=0.25, include_top=False, pooling="avg",
        weights=str(mobilenet_weights),
    )  # fmt: skip
    for trained, pretrained in zip(backbone.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, pretrained)  # frozen during the head phase

    # Asked for one more epoch, the finished run trains on, into the fine-tuning phase.
    both = train(recipe.replace(epochs=2), small, tmp_path, verbose=0)
    assert [h["epoch"] for h in both.state.history] == [1, 2]
    both.model.load_weights(tmp_path / both.state.checkpoint / "model.weights.h5")
    fine_tuned = both.model.get_layer("backbone").get_weights()  # as after the last epoch
    changed = [
        not np.array_equal(a, b) for a, b in zip(fine_tuned, original.get_weights(), strict=True)
    ]
    assert sum(changed) > len(changed) // 2  # fine-tuning moved the backbone


@pytest.mark.slow
def test_k_fold_reports_mean_and_std(slice_data, tmp_path):
    small = first_images(slice_data, 200)
    report = cross_validate(get_recipe("seed_cnn", epochs=1, batch_size=100), small, tmp_path, 2)
    assert report["folds"] == 2 and len(report["val_accuracy"]) == 2
    assert report["mean"] == pytest.approx(np.mean(report["val_accuracy"]))
    assert report["std"] == pytest.approx(np.std(report["val_accuracy"], ddof=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold-1", "fold-2"]


def test_input_pipelines_run_without_tf_datas_autotuning_thread(slice_data):
    # An iterator's destructor waits for that thread to wake from its sleep (up to a minute);
    # Keras's evaluate drops its iterator every epoch, and epochs stalled for up to 37 s.
    ds = make_dataset(slice_data.x_train[:8], slice_data.y_train[:8], 4, "flip_crop", shuffle=True)
    assert ds.options().autotune.enabled is False
    images, targets = next(iter(ds))
    assert images.shape == (4, 32, 32, 3) and targets.shape == (4, 10)


def test_onednn_is_on_by_default_once_cifar_cnn_is_imported():
    # A fresh interpreter without the variable: importing the library turns oneDNN on (the
    # command lines, app and benches all import it before TensorFlow).
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    code = "import os, cifar_cnn; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "1", run.stderr
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"  # a user's own choice stands
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "0", run.stderr


FUSION_PROBE = """
import glob, json, os, sys
os.environ["XLA_FLAGS"] = "--xla_dump_to=" + sys.argv[1]
import numpy as np
from cifar_cnn.models import create_model
from training.fast_layers import with_fast_layers
from training.train import set_mixed_precision

def one_step(mode):
    set_mixed_precision(mode)
    model = with_fast_layers(create_model("resnet_fast", widths=(8, 8, 8)))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    model.train_on_batch(images, np.eye(10)[np.arange(8)])
    return [open(p).read() for p in glob.glob(sys.argv[1] + "/*before_optimizations.txt")]

print(json.dumps({"off": one_step("off"), "bf16": one_step("bf16")}))
"""


def test_bfloat16_on_a_cpu_fuses_the_elementwise_ops_and_leaves_convolutions_to_onednn(tmp_path):
    # A fresh interpreter, as `cifar-train` runs (the XLA flags are read once per process). XLA
    # writes out every cluster it compiles: none in float32; in bfloat16, GELU's arithmetic
    # (exponential) and no convolution, pooling, matmul or BatchNorm (oneDNN's fused kernel).
    env = {k: v for k, v in os.environ.items() if k != "TF_XLA_FLAGS"}
    run = subprocess.run(
        [sys.executable, "-c", FUSION_PROBE, str(tmp_path)], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    compiled = json.loads(run.stdout.strip().splitlines()[-1])
    assert compiled["off"] == []
    hlo = "\n".join(compiled["bf16"])
    assert " exponential(" in hlo
    for kept_on_onednn in (" convolution(", " reduce-window(", " dot(", " batch-norm-", " rsqrt("):
        assert kept_on_onednn not in hlo


def test_a_users_own_xla_cluster_choice_stands():
    code = "import os, training; print(os.environ['TF_XLA_FLAGS'])"
    env = {k: v for k, v in os.environ.items() if k != "TF_XLA_FLAGS"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "--tf_xla_ops_to_cluster=PW,RED,PWRED,MISC" in run.stdout, run.stderr
    env["TF_XLA_FLAGS"] = "--tf_xla_ops_to_cluster=PW"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "--tf_xla_ops_to_cluster=PW", run.stderr


def test_bfloat16_training_returns_a_float32_model_with_the_trained_weights(slice_data, tmp_path):
    small = first_images(slice_data, 200)
    result = train(
        get_recipe("seed_cnn", epochs=1, batch_size=100, mixed_precision="bf16"),
        small,
        tmp_path,
        verbose=0,
    )
    assert result.precision == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert tf.config.optimizer.get_jit() == ""  # XLA's fusion ends with the bfloat16 run
    assert {layer.dtype_policy.name for layer in result.model.layers} == {"float32"}
    # It trained with the fast layers; it comes back with Keras's own.
    assert not any(
        isinstance(
            layer, (fast_layers.BatchNormalization, fast_layers.Conv2D, fast_layers.Activation)
        )
        for layer in result.model.layers
    )
    trained = keras.models.clone_model(result.model)
    trained.load_weights(tmp_path / "best.weights.h5")
    for saved, returned in zip(trained.get_weights(), result.model.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, returned)


def test_a_bfloat16_run_that_fails_leaves_the_process_in_float32(slice_data, tmp_path):
    small = first_images(slice_data, 200)
    wrong_size = (small.x_test[:10, :16, :16], small.y_test[:10])  # fails at validation
    with pytest.raises(ValueError):
        train(
            get_recipe("seed_cnn", epochs=1, batch_size=100, mixed_precision="bf16"),
            small,
            tmp_path,
            validation=wrong_size,
            verbose=0,
        )
    assert keras.mixed_precision.global_policy().name == "float32"
    assert tf.config.optimizer.get_jit() == ""


def test_auto_precision_is_bfloat16_only_where_it_measures_faster(monkeypatch):
    import training.train as training_train

    def never_called():
        raise AssertionError("no probe expected")

    monkeypatch.setattr(training_train, "cpu_has_native_bfloat16", lambda: True)
    faster = {"float32": 200.0, "mixed_bfloat16": 400.0}
    mode, evidence = training_train.resolve_precision("auto", lambda: faster, 1000)
    assert mode == "bf16" and evidence["bfloat16_gain"] == 2.0
    slower = {"float32": 270.0, "mixed_bfloat16": 164.0}  # measured on an AVX512-BF16 Xeon
    assert training_train.resolve_precision("auto", lambda: slower, 1000)[0] == "off"
    assert training_train.resolve_precision("auto", never_called, 100) == ("off", None)  # short
    assert training_train.resolve_precision("bf16", never_called, 1000) == ("bf16", None)
    monkeypatch.setattr(training_train, "cpu_has_native_bfloat16", lambda: False)
    assert training_train.resolve_precision("auto", never_called, 10**6) == ("off", None)


def test_the_cards_hardware_line_names_the_cpus_bfloat16_hardware():
    # Both kinds of development machine call themselves "Intel(R) Xeon(R) Processor"; AMX is what
    # makes bfloat16 pay, so the card says which one trained the model.
    from training.model_folder import hardware_description
    from training.train import cpu_bfloat16

    model = "model name : Intel(R) Xeon(R) Processor\n"
    assert cpu_bfloat16(model + "flags : fpu avx512_bf16 amx_bf16 amx_tile\n") == "AMX"
    assert cpu_bfloat16(model + "flags : fpu avx512f avx512_bf16\n") == "AVX512-BF16"
    assert cpu_bfloat16(model + "flags : fpu avx2\n") == "none"
    said = {"AMX": "(with AMX)", "AVX512-BF16": "(with AVX512-BF16, no AMX)"}
    assert said.get(cpu_bfloat16(), "(no native bfloat16)") in hardware_description()


def test_the_precision_probe_times_both_precisions_and_restores_float32(slice_data):
    from training.train import probe_step_speeds

    recipe = get_recipe("seed_cnn", batch_size=32)
    speeds = probe_step_speeds(recipe, slice_data.x_train[:64], slice_data.y_train[:64], 1, 1)
    assert set(speeds) == {"float32", "mixed_bfloat16"} and min(speeds.values()) > 0
    assert keras.mixed_precision.global_policy().name == "float32"


def test_unknown_mixed_precision_is_refused(slice_data, tmp_path):
    with pytest.raises(ValueError, match="unknown mixed precision 'int8'"):
        train(get_recipe("seed_cnn", epochs=1, mixed_precision="int8"), slice_data, tmp_path)


def test_cifar_train_writes_under_runs_and_never_replaces_a_model_unasked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "runs" / "seed_cnn" / "model"  # the default output
    existing.mkdir(parents=True)
    (existing / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match="runs/seed_cnn/model exists; pass --overwrite"):
        train_main(["--model", "seed_cnn", "--data", str(SLICE_PATH)])
    (tmp_path / "shipped").mkdir()
    with pytest.raises(SystemExit, match="shipped exists; pass --overwrite"):
        train_main(["--model", "seed_cnn", "--output", "shipped"])
    assert (existing / "config.json").read_text() == "{}"


def test_missing_data_is_one_line_naming_the_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"no such file.*Pass --data PATH .*cifar10_slice\.npz"):
        train_main(["--model", "seed_cnn", "--data", "missing.tar.gz"])


def test_a_replaced_model_folder_keeps_nothing_of_the_old_one(tmp_path):
    from training.model_folder import replace_folder

    old, new = tmp_path / "model", tmp_path / ".tmp-model"
    old.mkdir()
    (old / "metrics.json").write_text("old")  # a result the new model does not have
    (old / "config.json").write_text("old")
    new.mkdir()
    (new / "config.json").write_text("new")
    replace_folder(new, old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in old.iterdir()] == ["config.json"]
    assert (old / "config.json").read_text() == "new"
