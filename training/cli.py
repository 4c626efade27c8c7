"""Command lines: `cifar-train`, `cifar-evaluate`, `cifar-ensemble` and `cifar-export`
(`cifar-push` is in training/push.py).

    cifar-train --model seed_cnn --epochs 1 --data data/cifar10_slice.npz   # runs/seed_cnn/model
    cifar-train --model resnet_fast --data ../shared/data/cifar-10-python.tar.gz
    cifar-train --model seed_cnn --folds 5 --epochs 10
    cifar-evaluate models/resnet_fast --data data/cifar10_slice.npz     # prints, writes nothing
    cifar-evaluate runs/seed_cnn/model --data data/cifar10_slice.npz --write   # into it
    cifar-ensemble models/resnet_fast_bf16_seed1 models/resnet_fast_wide \
        models/mobilenet_transfer_long
    cifar-ensemble --choose models/resnet_fast models/resnet_fast_seed3 models/mobilenet_transfer

Every recipe field (see `cifar_cnn.models.Recipe`) is a flag: `--epochs`, `--batch-size`, ...;
builder options are `--model-option key=value`. Rerunning an interrupted `cifar-train` with the
same `--run-dir` resumes it. Nothing is written into an existing model folder unless asked
(`--overwrite`, `--write`), so the shipped models/ stay as they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cifar_cnn.atomic import atomic_write_text
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, Cifar10, DataError, find_cifar10, load_cifar10
from cifar_cnn.export import (
    FORMATS,
    QUANTIZATIONS,
    export_onnx,
    export_saved_model,
    export_tflite,
)
from cifar_cnn.models import Recipe, get_recipe, list_models
from training.distributed import is_chief, make_strategy, train_distributed
from training.ensemble_choice import TIE_POINTS, candidates_table, choose, rank_candidates
from training.evaluate import (
    compare_with_baseline,
    evaluate_and_report,
    evaluate_corruptions,
    evaluate_ensemble_corruptions,
    evaluate_ensemble_ood,
    evaluate_ood,
)
from training.model_folder import (
    assemble_ensemble,
    build_ensemble,
    code_version,
    save_trained_model,
)
from training.train import cross_validate, train

_RECIPE_FLAGS = [f for f in dataclasses.fields(Recipe) if f.name not in ("model", "model_options")]
#: Where the command lines look for CIFAR-10 when neither --data nor $CIFAR10_PATH says and the
#: library's own search finds nothing: the project's machines keep the archive beside the clone.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "cifar-10-python.tar.gz"
RUNS = Path("runs")


def load_data(path: str | None) -> Cifar10:
    """CIFAR-10 from --data, else $CIFAR10_PATH, else the library's search, else ../shared/data;
    a DataError whose message names the flag to pass."""
    if path is None and not os.environ.get("CIFAR10_PATH") and find_cifar10() is None:
        path = str(SHARED_DATA) if SHARED_DATA.is_file() else None
    try:
        return load_cifar10(path)
    except DataError as error:
        raise DataError(
            f"{error}. Pass --data PATH (this repository ships a small real slice: "
            f"--data data/cifar10_slice.npz)"
        ) from None


def _add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recipe overrides (defaults: the model's recipe)")
    for f in _RECIPE_FLAGS:
        kind = {"int": int, "float": float, "str": str, "bool": _parse_bool}[f.type]
        group.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    group.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_parse_option,
        help="an option of the model's builder, e.g. backbone_weights=PATH.h5 or "
        "bn_epsilon=1e-3 (VALUE is read as JSON where it can be, 'none' as None; repeatable)",
    )


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if value.lower() == "none":
        return key, None
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-train",
        description="Train a CIFAR-10 model, evaluate it and save it as a Hub-layout folder.",
    )
    parser.add_argument("--model", required=True, choices=list_models())
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument(
        "--run-dir", type=Path, help="checkpoints and state (default: runs/MODEL); rerun to resume"
    )
    parser.add_argument(
        "--output", type=Path, help="model folder to write (default: RUN_DIR/model)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output folder if it exists"
    )
    parser.add_argument("--folds", type=int, default=0, help="k-fold cross-validation instead")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel on the workers named in TF_CONFIG (MultiWorkerMirroredStrategy); "
        "run the same command on every worker",
    )
    parser.add_argument("--no-evaluate", action="store_true", help="skip the test-set evaluation")
    _add_recipe_flags(parser)
    return parser


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    overrides = {
        f.name: getattr(args, f.name) for f in _RECIPE_FLAGS if getattr(args, f.name) is not None
    }
    recipe = get_recipe(args.model, **overrides)
    options = {**recipe.model_options, **dict(args.model_option)}
    return recipe.replace(model_options=options)


def train_main(argv: list[str] | None = None) -> None:
    args = build_train_parser().parse_args(argv)
    run_dir = args.run_dir or RUNS / args.model
    output = args.output or run_dir / "model"
    try:
        recipe = recipe_from_args(args)
        if args.folds and args.distributed:
            raise ValueError("--folds and --distributed cannot be combined")
        if not args.folds and output.exists() and not args.overwrite:
            raise ValueError(
                f"{output} exists; pass --overwrite to replace it, or choose another --output"
            )
        data = load_data(args.data)
    except (DataError, ValueError) as error:
        sys.exit(f"cifar-train: error: {error}")
    print(f"Data: {data!r}")
    print(f"Recipe: {json.dumps(recipe.to_dict())}")
    try:
        if args.folds:
            report = cross_validate(recipe, data, run_dir, args.folds)
            atomic_write_text(run_dir / "folds.json", json.dumps(report, indent=2))
            print(f"{args.folds}-fold val_accuracy: {report['mean']:.4f} +/- {report['std']:.4f}")
            return
        code = code_version()
        started = time.time()
        if args.distributed:
            strategy = make_strategy()
            result = train_distributed(recipe, data, run_dir, strategy)
            if not is_chief(strategy):
                print("Worker finished; the chief saves the model.")
                return
        else:
            result = train(recipe, data, run_dir)
    except ValueError as error:
        sys.exit(f"cifar-train: error: {error}")
    minutes = (time.time() - started) / 60
    print(
        f"Trained {recipe.model}: best val_accuracy {result.val_accuracy:.4f} "
        f"(epoch {result.state.best_epoch}), {result.images_per_second:.0f} images/s, "
        f"{result.train_seconds / 60:.1f} min of epochs in all, {minutes:.1f} min in this run"
    )
    command = " ".join(["cifar-train", *(argv if argv is not None else sys.argv[1:])])
    save_trained_model(
        result, recipe, data, output, command=command, evaluate=not args.no_evaluate, code=code
    )
    print(f"Saved {output}")


def _add_trust_flags(parser: argparse.ArgumentParser, ood: str, corruptions: str) -> None:
    """--ood / --corruptions and their options, shared by cifar-evaluate and cifar-ensemble."""
    parser.add_argument("--ood", action="store_true", help=ood)
    parser.add_argument(
        "--ood-features",
        default=None,
        help="ImageNet MobileNet alpha 0.25 weights (.h5) for the detector's features (default: "
        "the folder's own, else Keras's download)",
    )
    parser.add_argument(
        "--ood-images", type=int, help="cap the pictures used from each outlier source"
    )
    parser.add_argument(
        "--ood-sources",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="comma-separated outlier sources to use (default: every one this machine has; "
        "see cifar_cnn.data.outliers)",
    )
    parser.add_argument("--corruptions", action="store_true", help=corruptions)
    parser.add_argument(
        "--corruption-images", type=int, help="test images for --corruptions (default: all)"
    )


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-evaluate",
        description="Evaluate a saved model on the CIFAR-10 test set and print the results; "
        "with --write or --output, also write metrics, plots and a refreshed card.",
    )
    parser.add_argument(
        "model", help="model folder, Hub repo id (owner/name[@revision]) or registry name"
    )
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--write", action="store_true", help="write the results into the model folder itself"
    )
    where.add_argument("--output", type=Path, help="write the results into this folder")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--errors", action="store_true", help="also write errors.png: the most confident mistakes"
    )
    _add_trust_flags(
        parser,
        ood="also fit an out-of-distribution detector on the validation split and measure it "
        "against every outlier source this machine has (docs/ood_benchmark.md)",
        corruptions="also measure accuracy under 9 corruptions x 5 severities (corruptions.png)",
    )
    parser.add_argument(
        "--baseline",
        help="also measure this model folder on the same test images and show it beside the "
        "model in the card (e.g. the same architecture trained from scratch)",
    )
    parser.add_argument(
        "--baseline-label",
        default="baseline",
        help="what the baseline is, for the card (default: 'baseline')",
    )
    return parser


def evaluate_main(argv: list[str] | None = None) -> None:
    args = build_evaluate_parser().parse_args(argv)
    try:
        classifier = CifarClassifier.from_pretrained(args.model)
        if args.write and not Path(args.model).is_dir():
            raise ValueError("--write needs a model folder; give --output for a Hub repo")
        output = classifier.source_dir if args.write else args.output
        data = load_data(args.data)
        baseline = CifarClassifier.from_pretrained(args.baseline) if args.baseline else None
        evaluate_and_report(
            classifier, data, output, batch_size=args.batch_size, errors=args.errors
        )
        if baseline is not None:
            compare_with_baseline(
                classifier, baseline, data, output, args.baseline_label, args.batch_size
            )
        if args.ood:
            evaluate_ood(
                classifier, data, output, args.ood_features, args.ood_images, args.ood_sources
            )
        if args.corruptions:
            evaluate_corruptions(classifier, data, output, limit=args.corruption_images)
    except (DataError, ValueError, OSError) as error:
        sys.exit(f"cifar-evaluate: error: {error}")
    if output is None:
        print("Nothing written (pass --write or --output to save the results).")


def build_ensemble_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-ensemble",
        description="Combine saved models into an ensemble folder, weighted by validation "
        "accuracy, and evaluate it on the test set.",
    )
    parser.add_argument("members", nargs="+", type=Path, help="member model folders")
    parser.add_argument("--output", type=Path, help="the ensemble folder (default: runs/ensemble)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="rebuild the output folder if it exists (its corruption results are kept when the "
        "members and weights are the same; pass --ood again to fit its detector)",
    )
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument("--equal-weights", action="store_true", help="weight members equally")
    parser.add_argument(
        "--choose",
        action="store_true",
        help="build nothing: score every subset of two or more of the given models on the "
        "validation images none of them trained on, and name the one the rule in "
        "docs/training.md ships (the test set is not read)",
    )
    _add_trust_flags(
        parser,
        ood="also measure out-of-distribution detection",
        corruptions="also measure every member and the soft vote under 9 corruptions x 5 "
        "severities on the same images",
    )
    parser.add_argument(
        "--write-members",
        action="store_true",
        help="with --corruptions: also write each member's table into its own folder",
    )
    return parser


def ensemble_main(argv: list[str] | None = None) -> None:
    args = build_ensemble_parser().parse_args(argv)
    try:
        if args.choose:
            building = ("output", "overwrite", "ood", "corruptions", "write_members")
            given = [f"--{flag.replace('_', '-')}" for flag in building if getattr(args, flag)]
            if given:
                raise ValueError(f"--choose builds nothing, so {', '.join(given)} cannot apply")
            print_choice(args.members, load_data(args.data), args.equal_weights)
            return
        args.output = args.output or RUNS / "ensemble"
        if args.output.exists() and not args.overwrite:
            raise ValueError(
                f"{args.output} exists; pass --overwrite to rebuild it, or choose another --output"
            )
        data = load_data(args.data)
        ensemble = build_ensemble(args.members, args.output, data, equal_weights=args.equal_weights)
        if args.ood:
            evaluate_ensemble_ood(
                ensemble, data, args.output, args.ood_features, args.ood_images,
                args.ood_sources,
            )  # fmt: skip
        if args.corruptions:
            member_folders = None
            if args.write_members:
                if not all(Path(member).is_dir() for member in args.members):
                    raise ValueError("--write-members needs every member given as a folder")
                member_folders = [member.source_dir for member in ensemble.members]
            evaluate_ensemble_corruptions(
                ensemble, data, args.output, member_folders, args.corruption_images
            )
    except (DataError, ValueError, OSError) as error:
        sys.exit(f"cifar-ensemble: error: {error}")


def print_choice(models: list[Path], data: Cifar10, equal_weights: bool) -> None:
    """What `cifar-ensemble --choose` prints: the candidates, best first, each model alone, and
    the rule's choice as the command that builds it."""
    ensemble = assemble_ensemble(models, equal_weights)
    candidates, alone = rank_candidates(ensemble, data)
    chosen = choose(candidates)
    print(candidates_table(candidates, chosen))
    print()
    print(candidates_table(alone, heading="each model alone (not a candidate)"))
    print()
    folder_of = dict(zip(ensemble.names, models, strict=True))
    members = " ".join(str(folder_of[name]) for name in chosen.names)
    weighting = " --equal-weights" if equal_weights else ""
    print(
        f"By the rule (highest flip-TTA validation accuracy; within {TIE_POINTS} points, fewer "
        f"members): {' + '.join(chosen.names)}, {chosen.flip_tta_accuracy:.2%} with flip TTA. "
        f"Build it with: cifar-ensemble {members}{weighting} --output OUTPUT --data ..."
    )


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-export",
        description="Export a saved model for TensorFlow Serving (SavedModel), TFLite or ONNX.",
    )
    parser.add_argument(
        "model", help="model folder, Hub repo id (owner/name[@revision]) or registry name"
    )
    parser.add_argument(
        "output",
        type=Path,
        help="SavedModel version folder (e.g. serving/cifar10/1), .tflite or .onnx file",
    )
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default="float16",
        help="TFLite only; int8 calibrates on --representative-images training images",
    )
    parser.add_argument("--representative-images", type=int, default=500)
    parser.add_argument("--data", help="CIFAR-10 for int8 calibration (default: search)")
    return parser


def export_main(argv: list[str] | None = None) -> None:
    args = build_export_parser().parse_args(argv)
    try:
        classifier = CifarClassifier.from_pretrained(args.model)
        if args.format == "saved_model":
            path = export_saved_model(classifier, args.output)
        elif args.format == "onnx":
            path = export_onnx(classifier, args.output)
        else:
            representative = None
            if args.quantization == "int8":
                representative = load_data(args.data).x_train[: args.representative_images]
            path = export_tflite(classifier, args.output, args.quantization, representative)
    except (DataError, ValueError, OSError) as error:
        sys.exit(f"cifar-export: error: {error}")
    size = sum(f.stat().st_size for f in [path, *path.rglob("*")] if f.is_file()) / 2**20
    print(f"Wrote {path} ({size:.1f} MB)")


if __name__ == "__main__":
    train_main()
