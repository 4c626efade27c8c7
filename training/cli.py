"""Command lines: `cifar-train` (train, evaluate, save a Hub-layout folder) and `cifar-evaluate`.

    cifar-train --model resnet_fast --output models/resnet_fast
    cifar-train --model seed_cnn --data data/cifar10_slice.npz --epochs 1 --output /tmp/seed
    cifar-train --model seed_cnn --folds 5 --epochs 10
    cifar-evaluate models/resnet_fast
    cifar-ensemble models/resnet_fast models/mobilenet_transfer models/seed_cnn

Every recipe field (see training/recipes.py) is a flag: `--epochs`, `--batch-size`, ...
Rerunning an interrupted `cifar-train` with the same `--run-dir` resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import cifar_cnn  # noqa: F401  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads)
from cifar_cnn.data import DataError, load_cifar10
from training.recipes import RECIPES, Recipe, get_recipe

_RECIPE_FLAGS = [f for f in dataclasses.fields(Recipe) if f.name not in ("model", "model_options")]


def _add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recipe overrides (defaults: the model's recipe)")
    for f in _RECIPE_FLAGS:
        kind = {"int": int, "float": float, "str": str, "bool": _parse_bool}[f.type]
        group.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-train",
        description="Train a CIFAR-10 model, evaluate it and save it as a Hub-layout folder.",
    )
    parser.add_argument("--model", required=True, choices=sorted(RECIPES))
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument("--output", type=Path, help="model folder to write (default: models/MODEL)")
    parser.add_argument("--run-dir", type=Path, help="checkpoints and state (default: runs/MODEL)")
    parser.add_argument("--folds", type=int, default=0, help="k-fold cross-validation instead")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel on the workers named in TF_CONFIG (MultiWorkerMirroredStrategy); "
        "run the same command on every worker",
    )
    parser.add_argument("--no-evaluate", action="store_true", help="skip the test-set evaluation")
    parser.add_argument("--backbone", choices=["mobilenet", "resnet50"], help="transfer backbone")
    parser.add_argument("--backbone-weights", help="'imagenet', a .h5 file, or 'none'")
    parser.add_argument("--input-size", type=int, help="transfer model's internal input size")
    parser.add_argument(
        "--bias-lr-scale",
        type=float,
        help="resnet_fast: how many times faster the BatchNorm biases learn (exact under SGD only)",
    )
    parser.add_argument(
        "--bn-epsilon", type=float, help="resnet_fast: BatchNorm's epsilon (Keras default 1e-3)"
    )
    _add_recipe_flags(parser)
    return parser


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    overrides = {
        f.name: getattr(args, f.name) for f in _RECIPE_FLAGS if getattr(args, f.name) is not None
    }
    recipe = get_recipe(args.model, **overrides)
    options = dict(recipe.model_options)
    if args.backbone:
        options["backbone"] = args.backbone
    if args.backbone_weights:
        none = args.backbone_weights.lower() == "none"
        options["backbone_weights"] = None if none else args.backbone_weights
    if args.input_size:
        options["input_size"] = args.input_size
    if args.bias_lr_scale is not None:
        options["bias_lr_scale"] = args.bias_lr_scale
    if args.bn_epsilon is not None:
        options["bn_epsilon"] = args.bn_epsilon
    return dataclasses.replace(recipe, model_options=options)


def train_main(argv: list[str] | None = None) -> None:
    args = build_train_parser().parse_args(argv)
    try:
        recipe = recipe_from_args(args)
        data = load_cifar10(args.data)
    except (DataError, ValueError) as error:
        sys.exit(f"cifar-train: error: {error}")
    print(f"Data: {data!r}")
    print(f"Recipe: {json.dumps(recipe.to_dict())}")

    from training.train import cross_validate, train

    run_dir = args.run_dir or Path("runs") / recipe.model
    if args.folds and args.distributed:
        sys.exit("cifar-train: error: --folds and --distributed cannot be combined")
    if args.folds:
        report = cross_validate(recipe, data, run_dir, args.folds)
        (run_dir / "folds.json").write_text(json.dumps(report, indent=2))
        print(f"{args.folds}-fold val_accuracy: {report['mean']:.4f} +/- {report['std']:.4f}")
        return

    from training.publish import code_version, save_trained_model

    code = code_version()
    started = time.time()
    if args.distributed:
        from training.distributed import is_chief, make_strategy, train_distributed

        try:
            strategy = make_strategy()
            result = train_distributed(recipe, data, run_dir, strategy)
        except ValueError as error:
            sys.exit(f"cifar-train: error: {error}")
        if not is_chief(strategy):
            print("Worker finished; the chief saves the model.")
            return
    else:
        result = train(recipe, data, run_dir)
    minutes = (time.time() - started) / 60
    print(
        f"Trained {recipe.model}: best val_accuracy {result.val_accuracy:.4f} "
        f"(epoch {result.state.best_epoch}), {result.images_per_second:.0f} images/s, "
        f"{result.train_seconds / 60:.1f} min of epochs in all, {minutes:.1f} min in this run"
    )

    output = args.output or Path("models") / recipe.model
    command = " ".join(["cifar-train", *(argv if argv is not None else sys.argv[1:])])
    save_trained_model(
        result, recipe, data, output, command=command, evaluate=not args.no_evaluate, code=code
    )
    print(f"Saved {output}")


def _add_trust_flags(parser: argparse.ArgumentParser, ood: str, corruptions: str) -> None:
    """--ood / --corruptions and their options, shared by cifar-evaluate and cifar-ensemble."""
    parser.add_argument("--ood", action="store_true", help=ood)
    parser.add_argument(
        "--fashion-mnist", default=None, help="Fashion-MNIST folder (default: Debian's)"
    )
    parser.add_argument(
        "--ood-images", type=int, help="cap the Fashion-MNIST images used (default: all)"
    )
    parser.add_argument("--corruptions", action="store_true", help=corruptions)
    parser.add_argument(
        "--corruption-images", type=int, help="test images for --corruptions (default: all)"
    )


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-evaluate",
        description="Evaluate a saved model on the CIFAR-10 test set; write metrics and plots.",
    )
    parser.add_argument("model", help="model folder or Hub repo id (owner/name[@revision])")
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument("--output", type=Path, help="where to write (default: the model folder)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--errors", action="store_true", help="also write errors.png: the most confident mistakes"
    )
    _add_trust_flags(
        parser,
        ood="also fit an out-of-distribution detector on the validation split and measure it "
        "against Fashion-MNIST",
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
    from cifar_cnn.classifier import CifarClassifier
    from training.publish import evaluate_and_report

    try:
        data = load_cifar10(args.data)
        classifier = CifarClassifier.from_pretrained(args.model)
        baseline = CifarClassifier.from_pretrained(args.baseline) if args.baseline else None
    except (DataError, ValueError, OSError) as error:
        sys.exit(f"cifar-evaluate: error: {error}")
    output = args.output or (Path(args.model) if Path(args.model).is_dir() else None)
    if output is None:
        sys.exit("cifar-evaluate: error: --output is required for a Hub repo id")
    evaluate_and_report(classifier, data, output, batch_size=args.batch_size, errors=args.errors)
    if baseline is not None:
        from training.publish import compare_with_baseline

        compare_with_baseline(
            classifier, baseline, data, output, args.baseline_label, args.batch_size
        )
    if args.corruptions or args.ood:
        from cifar_cnn.ood import FASHION_MNIST_DIR
        from training.robustness import evaluate_corruptions, evaluate_ood

        try:
            if args.ood:
                evaluate_ood(
                    classifier, data, output, args.fashion_mnist or FASHION_MNIST_DIR,
                    args.ood_images,
                )  # fmt: skip
            if args.corruptions:
                evaluate_corruptions(classifier, data, output, limit=args.corruption_images)
        except (ValueError, OSError) as error:
            sys.exit(f"cifar-evaluate: error: {error}")


def build_ensemble_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-ensemble",
        description="Combine saved models into an ensemble folder, weighted by validation "
        "accuracy, and evaluate it on the test set.",
    )
    parser.add_argument("members", nargs="+", type=Path, help="member model folders")
    parser.add_argument("--output", type=Path, default=Path("models/ensemble"))
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument("--equal-weights", action="store_true", help="weight members equally")
    _add_trust_flags(
        parser,
        ood="also measure out-of-distribution detection",
        corruptions="also measure every member and the soft vote under 9 corruptions x 5 "
        "severities on the same images; each member's table goes into its own folder",
    )
    return parser


def ensemble_main(argv: list[str] | None = None) -> None:
    args = build_ensemble_parser().parse_args(argv)
    from training.publish import build_ensemble

    try:
        data = load_cifar10(args.data)
        ensemble = build_ensemble(args.members, args.output, data, equal_weights=args.equal_weights)
        if args.ood:
            from cifar_cnn.ood import FASHION_MNIST_DIR
            from training.robustness import evaluate_ensemble_ood

            evaluate_ensemble_ood(
                ensemble, data, args.output, args.fashion_mnist or FASHION_MNIST_DIR,
                args.ood_images,
            )  # fmt: skip
        if args.corruptions:
            from training.robustness import evaluate_ensemble_corruptions

            evaluate_ensemble_corruptions(
                ensemble, data, args.output, args.members, args.corruption_images
            )
    except (DataError, ValueError, OSError) as error:
        sys.exit(f"cifar-ensemble: error: {error}")


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-export",
        description="Export a saved model for TensorFlow Serving (SavedModel) or TFLite.",
    )
    parser.add_argument("model", help="model folder or Hub repo id (owner/name[@revision])")
    parser.add_argument(
        "output", type=Path, help="SavedModel version folder (e.g. serving/cifar10/1) or .tflite"
    )
    parser.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model")
    parser.add_argument(
        "--quantization",
        choices=["float32", "float16", "int8"],
        default="float16",
        help="TFLite only; int8 calibrates on --representative-images training images",
    )
    parser.add_argument("--representative-images", type=int, default=500)
    parser.add_argument("--data", help="CIFAR-10 for int8 calibration (default: search)")
    return parser


def export_main(argv: list[str] | None = None) -> None:
    args = build_export_parser().parse_args(argv)
    from cifar_cnn.classifier import CifarClassifier
    from cifar_cnn.export import export_saved_model, export_tflite

    try:
        classifier = CifarClassifier.from_pretrained(args.model)
        if args.format == "saved_model":
            path = export_saved_model(classifier, args.output)
        else:
            representative = None
            if args.quantization == "int8":
                representative = load_cifar10(args.data).x_train[: args.representative_images]
            path = export_tflite(classifier, args.output, args.quantization, representative)
    except (DataError, ValueError, OSError) as error:
        sys.exit(f"cifar-export: error: {error}")
    size = sum(f.stat().st_size for f in [path, *path.rglob("*")] if f.is_file()) / 2**20
    print(f"Wrote {path} ({size:.1f} MB)")


if __name__ == "__main__":
    train_main()
