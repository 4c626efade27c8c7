"""From a finished training run to a Hub-layout model folder (weights, config with the training
record and calibration, history, learning curves; then `training.evaluate`'s metrics, plots and
card), and from saved models to an ensemble folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import tensorflow as tf

from cifar_cnn.atomic import temporary_sibling
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, Cifar10, split_validation
from cifar_cnn.ensemble import CifarEnsemble, distinct_names
from cifar_cnn.hub.layout import METRICS_FILE, read_config, read_json
from cifar_cnn.hub.reference import display_name
from cifar_cnn.models import Recipe
from cifar_cnn.report.metrics import (
    best_validation_member,
    ensemble_probabilities_with_flips,
    evaluate_ensemble,
    vote_accuracies,
)
from cifar_cnn.report.plots import plot_learning_curves
from cifar_cnn.trust.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)
from cifar_cnn.voting import validation_weights
from training.evaluate import evaluate_and_report, validation_images
from training.train import TrainResult, cpu_bfloat16


def hardware_description() -> str:
    """CPU model, its bfloat16 hardware and core count (and GPUs, if TensorFlow sees any): two
    2-core "Intel(R) Xeon(R) Processor"s can differ by AMX, which decides bfloat16's speed."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
             if line.startswith("model name")]  # fmt: skip
    cpu = names[0] if names else "unknown CPU"
    gpus = tf.config.list_physical_devices("GPU")
    bfloat16 = {"AMX": "with AMX", "AVX512-BF16": "with AVX512-BF16, no AMX"}.get(
        cpu_bfloat16(cpuinfo), "no native bfloat16"
    )
    text = f"{cpu} ({bfloat16}), {os.cpu_count()} cores"
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    text += f", TF_ENABLE_ONEDNN_OPTS={onednn}"
    return text + (f", {len(gpus)} GPU(s)" if gpus else ", no GPU")


def code_version() -> str:
    """The git commit of this checkout ("+changes" when it has uncommitted edits), if known."""

    def git(*args: str) -> str:
        command = ["git", *args]
        return subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        changed = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_trained_model(
    result: TrainResult,
    recipe: Recipe,
    data: Cifar10,
    output: str | os.PathLike,
    *,
    command: str,
    evaluate: bool = True,
    code: str | None = None,
) -> CifarClassifier:
    """Save the trained model as a Hub-layout folder; evaluate it on the test set if asked.

    `code` is the git commit the training ran from (default: the checkout's commit now)."""
    output = Path(output)
    staging = temporary_sibling(output)  # complete before it replaces anything
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _, _, x_val, y_val = split_validation(
        data.x_train, data.y_train, recipe.validation_fraction, seed=recipe.split_seed
    )
    classifier = CifarClassifier(
        result.model,
        config={
            "architecture": recipe.model,
            "parameters": int(result.model.count_params()),
            "has_history": True,
            "training": {
                "recipe": recipe.to_dict(),
                "command": command,
                "data_source": data.source,
                "train_n": len(data.x_train) - len(x_val),
                "val_n": len(x_val),
                "epochs_run": result.state.epoch,
                "best_epoch": result.state.best_epoch,
                "best_val_accuracy": result.val_accuracy,
                "train_seconds": round(result.train_seconds, 1),
                "images_per_second": result.images_per_second,
                "precision": result.precision,
                # How "auto" chose it on this machine (measured step speeds), when it measured.
                "precision_choice": result.precision_choice,
                # Distillation's teacher: its name and accuracy on these validation images.
                **({"teacher": result.teacher} if result.teacher else {}),
                "hardware": hardware_description(),
                "code_version": code or code_version(),
            },
        },
    )
    classifier.history = result.state.history
    classifier.config["calibration"] = calibrate_on_validation(classifier, x_val, y_val)
    classifier.save_pretrained(staging)
    plot_learning_curves(
        result.state.history,
        staging / "learning_curves.png",
        title=f"{recipe.model}: learning curves",
    )
    if evaluate:
        evaluate_and_report(classifier, data, staging, errors=True)
    replace_folder(staging, output)
    classifier.source_dir = output
    return classifier


def replace_folder(new: Path, old: Path) -> None:
    """Put the folder `new` where `old` is: a replaced folder keeps no file of its own (stale
    metrics or plots would be read as the new model's), and `old` is never half-written."""
    if old.exists():
        trash = old.with_name(f".old-{os.getpid()}-{old.name}")
        os.replace(old, trash)
        os.replace(new, old)
        shutil.rmtree(trash)
    else:
        old.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, old)


def calibrate_on_validation(classifier: CifarClassifier, x_val, y_val) -> dict:
    """Fit a temperature on the validation split; record calibration before and after."""
    raw = classifier.predict(x_val, calibrated=False)
    temperature = fit_temperature(raw, y_val)
    scaled = apply_temperature(raw, temperature)
    record = {
        "temperature": temperature,
        "fitted_on": f"validation split ({len(y_val)} images)",
        "val_ece_before": expected_calibration_error(raw, y_val),
        "val_ece_after": expected_calibration_error(scaled, y_val),
    }
    print(
        f"Temperature {temperature:.3f} on validation: ECE {record['val_ece_before']:.4f} -> "
        f"{record['val_ece_after']:.4f}"
    )
    return record


def _kept_results(output: Path, ensemble: CifarEnsemble) -> dict:
    """The corruption results already in `output`, if it holds the same members with the same
    weights (rebuilding an ensemble should not drop what was measured for it). Its OOD detector
    is not kept: its files go with the old folder, so `--ood` fits it again."""
    try:
        config, metrics = read_config(output), read_json(output / METRICS_FILE) or {}
    except ValueError:  # no folder or no readable config: nothing measured to keep
        return {}
    before = [(m.get("name"), m.get("source"), m.get("weight")) for m in config.get("members", [])]
    now = list(zip(ensemble.names, ensemble.sources, map(float, ensemble.weights), strict=True))
    if before != now:
        return {}
    return {k: v for k, v in metrics.items() if k == "corruptions"}


def assemble_ensemble(member_folders: list[Path], equal_weights: bool = False) -> CifarEnsemble:
    """The models in `member_folders` (folders or Hub ids) as an unsaved ensemble: each named by
    its folder and weighted by its recorded validation accuracy unless `equal_weights`."""
    members = [CifarClassifier.from_pretrained(folder) for folder in member_folders]
    weights = None
    if not equal_weights:
        weights = validation_weights([m.config for m in members])
        if weights is None:
            raise ValueError("a member has no validation accuracy; use --equal-weights")
    names = distinct_names([
        Path(folder).resolve().name if Path(folder).is_dir() else display_name(str(folder))
        for folder in member_folders
    ])  # fmt: skip
    return CifarEnsemble(members, weights=weights, names=names)


def build_ensemble(
    member_folders: list[Path], output: Path, data: Cifar10, equal_weights: bool = False
) -> CifarEnsemble:
    """An ensemble folder referencing `member_folders` (by relative path), each weighted by its
    validation accuracy unless `equal_weights` and named by its folder (as the app shows it);
    evaluated on the validation images no member trained on, which is where a choice of members
    is judged, and on the test set, and printed."""
    ensemble = assemble_ensemble(member_folders, equal_weights)
    members = ensemble.members
    ensemble.metrics = evaluate_ensemble(ensemble, data.x_test, data.y_test)
    try:
        x_val, y_val = validation_images(members, data)
    except ValueError as error:  # no training record, or no image every member left out
        print(f"No validation figures: {error}")
    else:
        plain, flipped = ensemble_probabilities_with_flips(ensemble, x_val)
        ensemble.metrics["validation"] = {
            "plain": vote_accuracies(ensemble, plain, y_val),
            "flip_tta": vote_accuracies(ensemble, flipped, y_val),
        }
    output.mkdir(parents=True, exist_ok=True)
    sources = [os.path.relpath(m.source_dir.resolve(), output.resolve()) for m in members]
    ensemble.sources = sources
    ensemble.metrics.update(_kept_results(output, ensemble))
    ensemble.save_pretrained(output)
    print(ensemble_summary(ensemble.metrics))
    print(f"Wrote {output}")
    return ensemble


def ensemble_summary(metrics: dict) -> str:
    """What `cifar-ensemble` prints: each member's and the votes' accuracies, plain and with flip
    TTA, on validation (where it exists) and test images."""
    tta = metrics["flip_tta"]
    lines = [
        f"{name}: test {accuracy:.4f} (flip TTA {tta['members'][name]:.4f})"
        for name, accuracy in metrics["members"].items()
    ]
    lines.append(
        f"soft vote {metrics['soft']['accuracy']:.4f} (flip TTA {tta['soft_accuracy']:.4f}), "
        f"hard vote {metrics['hard_accuracy']:.4f} (flip TTA {tta['hard_accuracy']:.4f}), "
        f"all members agree on {metrics['agreement']['all_agree']:.1%} of {metrics['n']} images"
    )
    if "validation" in metrics:
        plain, flipped = metrics["validation"]["plain"], metrics["validation"]["flip_tta"]
        best = best_validation_member(metrics["validation"])
        lines.append(
            f"validation ({plain['n']} images no member trained on): soft vote "
            f"{plain['soft_accuracy']:.4f} (flip TTA {flipped['soft_accuracy']:.4f}); best member "
            f"{best} {plain['members'][best]:.4f} (flip TTA {flipped['members'][best]:.4f})"
        )
    return "\n".join(lines)
