"""Model cards: README.md rendered from the templates in `templates/` (Jinja2, via
`huggingface_hub.ModelCard`), with `model-index` results so the Hub shows the accuracy."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from cifar_cnn.models import get_spec, list_models
from cifar_cnn.report.metrics import best_validation_member, confused_pairs_table, per_class_table
from cifar_cnn.voting import report_label

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE_PATH = TEMPLATES / "model_card.md"
ENSEMBLE_TEMPLATE = TEMPLATES / "ensemble_card.md"
#: The Hub's CIFAR-10 dataset.
DATASET_ID = "uoft-cs/cifar10"
#: What every card cites: the data, and the methods behind its trust sections.
CITATIONS = {
    "cifar10": "Alex Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009 "
    "(CIFAR-10).",
    "gradcam": "Ramprasaath R. Selvaraju et al., *Grad-CAM: Visual Explanations from Deep "
    "Networks via Gradient-based Localization*, ICCV 2017, arXiv:1610.02391.",
    "ood": "Yiyou Sun et al., *Out-of-Distribution Detection with Deep Nearest Neighbors*, ICML "
    "2022, arXiv:2204.06507 (k-nearest-neighbour distance); Dan Hendrycks and Kevin Gimpel, *A "
    "Baseline for Detecting Misclassified and Out-of-Distribution Examples in Neural Networks*, "
    "ICLR 2017, arXiv:1610.02136 (top probability); Weitang Liu et al., *Energy-based "
    "Out-of-distribution Detection*, NeurIPS 2020, arXiv:2010.03759 (energy score).",
    "corruptions": "Dan Hendrycks and Thomas Dietterich, *Benchmarking Neural Network Robustness "
    "to Common Corruptions and Perturbations*, ICLR 2019, arXiv:1903.12261 (CIFAR-10-C).",
    "calibration": "Chuan Guo et al., *On Calibration of Modern Neural Networks*, ICML 2017, "
    "arXiv:1706.04599 (temperature scaling).",
}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def test_accuracy_result(name: str, accuracy: float, repo_id: str | None = None) -> EvalResult:
    """A model-index entry: accuracy on the CIFAR-10 test split, as the Hub displays it; once the
    repo is known, its source is the repo's own metrics.json, which `cifar-evaluate` wrote."""
    source = (
        {"source_name": "cifar-evaluate (metrics.json)",
         "source_url": f"https://huggingface.co/{repo_id}/blob/main/metrics.json"}
        if repo_id else {}
    )  # fmt: skip
    return EvalResult(
        task_type="image-classification",
        task_name="Image Classification",
        dataset_type=DATASET_ID,
        dataset_name="CIFAR-10",
        dataset_split="test",
        metric_type="accuracy",
        metric_name=name,
        metric_value=round(accuracy, 4),
        **source,
    )


def card_data(
    config: dict[str, Any],
    metrics: dict[str, Any] | None,
    model_name: str,
    repo_id: str | None = None,
) -> ModelCardData:
    results = []
    if metrics:
        results = [
            test_accuracy_result(name, metrics[key]["accuracy"], repo_id)
            for key, name in (("plain", "accuracy"), ("flip_tta", "accuracy with flip TTA"))
        ]
    return ModelCardData(
        model_name=model_name,
        library_name="keras",
        license="mit",
        pipeline_tag="image-classification",
        datasets=[DATASET_ID],
        metrics=["accuracy"],
        tags=["cifar10", "image-classification", "keras", "cifar_cnn", config["architecture"]],
        eval_results=results or None,
    )


#: Recipe settings a card does not list as changes: the seed has its own sentence, the teacher
#: its own paragraph.
_NOT_CHANGES = {"seed", "teacher", "teacher_weight"}


def recipe_changes(recipe: dict[str, Any], registered: dict[str, Any]) -> list[str]:
    """How a run's recipe differs from its architecture's registered one, as "epochs 15 (the
    recipe's 12)"; model options count where the registered recipe sets them (so a weights file
    path given on the command line is not a change), and settings it lacks are ignored."""
    changes = []
    for key, default in registered.items():
        if key in _NOT_CHANGES or key not in recipe:
            continue
        if key == "model_options":
            changes += [
                f"{option} {recipe[key].get(option)} (the recipe's {value})"
                for option, value in default.items()
                if recipe[key].get(option, value) != value
            ]
        elif recipe[key] != default:
            changes.append(f"{key} {recipe[key]} (the recipe's {default})")
    return changes


def architecture_changes(model_options: dict[str, Any], build: Any) -> dict[str, tuple[Any, Any]]:
    """Builder options a run set that its registered recipe leaves at the builder's default (say
    resnet_fast's widths), as {option: (value, default)}: these change the network itself. Only
    numbers, booleans and sequences of them are compared, so a file path given on the command line
    is neither a change nor shown."""
    changes = {}
    for name, parameter in inspect.signature(build).parameters.items():
        default = parameter.default
        if name not in model_options or not _plain_value(default):
            continue
        value = model_options[name]
        if isinstance(default, tuple):
            default = list(default)
        if _plain_value(value) and value != default:
            changes[name] = (value, default)
    return changes


def _plain_value(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and all(_plain_value(v) for v in value)
    return isinstance(value, bool | int | float)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def render_model_card(
    config: dict[str, Any],
    metrics: dict[str, Any] | None,
    repo_id: str | None = None,
    error_gallery: bool = False,
    plain_keras: bool = True,
) -> ModelCard:
    """The card for a model folder, from its config (architecture, training record) and metrics.
    `plain_keras`: whether Keras alone loads the saved model (no custom layer left), so the card
    shows that snippet."""
    architecture = config["architecture"]
    spec = get_spec(architecture) if architecture in list_models() else None
    title = spec.title if spec else f"CIFAR-10 {architecture}"
    description = spec.description if spec else ""
    training = config.get("training")
    recipe = (training or {}).get("recipe", {})
    seed = recipe.get("seed")
    changes = recipe_changes(recipe, spec.recipe.to_dict()) if spec else []
    reshaped = {}
    if spec:
        options = recipe.get("model_options", {})
        unregistered = {k: v for k, v in options.items() if k not in spec.recipe.model_options}
        reshaped = architecture_changes(unregistered, spec.build)
    if reshaped:  # another network than the spec's title names
        title = f"CIFAR-10 {architecture}, " + ", ".join(
            f"{k} {v}" for k, (v, _) in reshaped.items()
        )
        changes = [f"{k} {v} (the default {d})" for k, (v, d) in reshaped.items()] + changes
    bfloat16 = (training or {}).get("precision") == "mixed_bfloat16"  # the arithmetic, not recipe
    if bfloat16:
        changes.append("bfloat16 arithmetic (its weights kept and saved in float32)")
    if spec and seed is not None and seed != spec.recipe.seed:  # another run of the same recipe
        title = (title if reshaped else f"CIFAR-10 {architecture}") + f", seed {seed}"
        same_split = recipe.get("split_seed", seed) == spec.recipe.split_seed and (
            recipe.get("validation_fraction", spec.recipe.validation_fraction)
            == spec.recipe.validation_fraction
        )
        description = (
            f"{architecture}'s recipe run again from seed {seed}"
            + (f", with {_and(changes)}" if changes else "")
            + ": other initial weights, batch order and augmentation"
            + (
                "; the same validation images. "
                if same_split
                else ", and another validation split. "
            )
            + description
        )
    elif changes:
        description = f"{architecture}'s recipe with {_and(changes)}. " + description
    if bfloat16:
        title += ", trained in bfloat16"
    teacher = (training or {}).get("teacher")
    if teacher:
        title += f", distilled from {teacher['name']}"
        description = (
            f"Trained toward {teacher['name']}'s probabilities as well as the labels (weight "
            f"{recipe['teacher_weight']:g} on the teacher's), {teacher['name']} scoring "
            f"{teacher['validation_accuracy']:.2%} with flip TTA on the "
            f"{teacher['validation_images']:,} validation images. " + description
        )
    kwargs: dict[str, Any] = {
        "title": title,
        "description": description,
        "citations": [*(spec.citations if spec else ()), *CITATIONS.values()],
        "class_list": ", ".join(config["class_names"]),
        "load_id": repo_id or config.get("repo_id") or f"path/to/{architecture}",
        "keras_path": (
            f"hf://{repo_id or config['repo_id']}"
            if repo_id or config.get("repo_id")
            else f"path/to/{architecture}"
        ),
        "resize_rule": config["input"]["resize"],
        "architecture": architecture,
        "parameters": f"{config.get('parameters', 0):,}",
        "metrics": metrics,
        "training": training,
        "history": bool(config.get("has_history")),
        "claim": spec.claim if spec else None,
        "error_gallery": error_gallery,
        "plain_keras": plain_keras,
    }
    if metrics:
        plain, tta = metrics["plain"], metrics["flip_tta"]
        kwargs.update(
            test_n=plain["n"],
            accuracy=_percent(plain["accuracy"]),
            accuracy_tta=_percent(tta["accuracy"]),
            top3=_percent(plain["top_k_accuracy"]["3"]),
            macro_f1=f"{plain['macro_f1']:.4f}",
            per_class_table=per_class_table(plain),
            confused_table=confused_pairs_table(plain),
            ece=_percent(plain["ece"]),
        )
        scaled = metrics.get("temperature_scaled")
        if scaled:
            kwargs.update(ece_scaled=_percent(scaled["ece"]), temperature=scaled["temperature"])
        kwargs.update(
            _ood_fields(metrics.get("ood")), **_corruption_fields(metrics.get("corruptions"))
        )
        kwargs["baseline"] = _baseline_fields(metrics.get("baseline"), plain["accuracy"])
    if training:
        kwargs.update(
            val_accuracy=_percent(training.get("best_val_accuracy")),
            validation_fraction=f"{training['recipe']['validation_fraction']:.0%}",
            train_n=f"{training['train_n']:,}",
            val_n=f"{training['val_n']:,}",
            epochs_run=training["epochs_run"],
            best_epoch=training["best_epoch"],
            train_minutes=f"{training['train_seconds'] / 60:.1f}",
            images_per_second=f"{training['images_per_second']:.0f}",
            hardware=training["hardware"],
            precision=_precision_text(training),
            software=", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items()),
            recipe_json=json.dumps(training["recipe"], indent=2),
            command=training["command"],
            code_version=training.get("code_version", "not recorded"),
        )
    else:
        kwargs.update(val_accuracy="n/a", validation_fraction="n/a")
    return ModelCard.from_template(
        card_data(config, metrics, title, repo_id), template_path=str(TEMPLATE_PATH), **kwargs
    )


OOD_SCORE_NAMES = {
    "msp": "the top class probability",
    "energy": "the energy score, the log-sum-exp of the logits",
    "vote_share": "the weighted share of members voting for the soft vote's class",
    "agreement": "the members' mean probability for the soft vote's class",  # earlier releases
}


def _precision_text(training: dict) -> str:
    """The training arithmetic, and how "auto" chose it on the training machine if it measured."""
    text = training.get("precision", "float32")
    choice = training.get("precision_choice")
    if choice:
        speeds = choice["images_per_second"]
        text += (
            f" (chosen by measurement on this CPU: bfloat16 {speeds['mixed_bfloat16']:.0f}, "
            f"float32 {speeds['float32']:.0f} training images/s)"
        )
    return text


def _ood_fields(report: dict | None, subject: str = "model") -> dict:
    if not report:
        return {"ood": False}
    detector = report["detector"]
    if "sources" not in report:  # a report of an earlier release: one score, Fashion-MNIST
        rows = "\n".join(
            f"| {name}{' (used)' if name == detector['score'] else ''} | {r['auroc']:.4f} "
            f"| {_percent(r['fpr_at_95_tpr'])} |"
            for name, r in report["scores"].items()
        )
        section = (
            f"The {subject} scores each prediction "
            f"({OOD_SCORE_NAMES.get(detector['score'], detector['score'])}) and warns below "
            f"{detector['threshold']:.4g}, which keeps {detector['tpr']:.0%} of CIFAR-10 "
            f"validation images ({detector['fitted_on']}). Measured on "
            f"{report['in_distribution']} against {report['outliers']}:\n\n"
            "| score | AUROC | false-positive rate at 95% true-positive rate |\n|---|---:|---:|\n"
            + rows
        )
        return {"ood": True, "ood_section": section}
    own = (
        f", plus {detector['own_weight']:g} x the {subject}'s own score "
        f"({OOD_SCORE_NAMES.get(detector['own_score'], detector['own_score'])})"
        if detector.get("own_score")
        else ""
    )
    rows = "\n".join(
        f"| {name} | {'held out' if s['held_out'] else 'choice'} | {s['images']} "
        f"| {s['scores']['detector']['auroc']:.4f} "
        f"| {_percent(s['scores']['detector']['fpr_at_95_tpr'])} | {_percent(s['flagged'])} |"
        for name, s in report["sources"].items()
    )
    held = report["held_out"]
    held_line = (
        f" On the held-out sources, never used to choose anything: mean AUROC "
        f"{held['auroc']:.4f}, mean false-positive rate {_percent(held['fpr_at_95_tpr'])} at 95% "
        "true-positive rate."
        if held["auroc"] is not None
        else ""
    )
    section = (
        f'The {subject} always answers with one of the ten classes. To say "this may not be one '
        'of them", it scores each picture by how far its ImageNet MobileNet features lie from '
        f"{detector['bank_images']:,} CIFAR-10 training pictures' (cosine similarity to the k-th "
        f"nearest of them, k = {detector['k']}; Sun et al., 2022){own}, each standardised on "
        f"validation, and warns below a threshold that keeps {detector['tpr']:.0%} of the "
        f"validation pictures. The settings were chosen on the {detector['fitted_on']}. It "
        f"flags **{_percent(report['test_flagged'])}** of {report['in_distribution']}.{held_line}"
        "\n\n| outlier source | role | pictures | AUROC | false-positive rate at 95% TPR "
        "| flagged at the threshold |\n|---|---|---:|---:|---:|---:|\n"
        + rows
        + "\n\nSources and every detector compared: docs/ood_benchmark.md in the code repository."
    )
    return {"ood": True, "ood_section": section}


def _baseline_fields(baseline: dict | None, accuracy: float) -> dict | None:
    if not baseline:
        return None
    difference = 100 * (accuracy - baseline["accuracy"])
    seconds = baseline.get("train_seconds")
    speed = baseline.get("images_per_second")
    return {
        **baseline,
        "accuracy": _percent(baseline["accuracy"]),
        "accuracy_tta": _percent(baseline["accuracy_tta"]),
        "n": f"{baseline['n']:,}",
        "parameters": f"{baseline['parameters']:,}",
        "train_minutes": "n/a" if seconds is None else f"{seconds / 60:.1f}",
        "images_per_second": "n/a" if speed is None else f"{speed:.0f}",
        "verdict": (
            f"This model is {difference:.2f} points {'above' if difference >= 0 else 'below'} "
            f"{baseline['label']}."
        ),
    }


def _corruption_fields(report: dict | None) -> dict:
    if not report:
        return {"corruptions": False}
    rows = "\n".join(
        f"| {name.replace('_', ' ')} | "
        + " | ".join(_percent(acc) for acc in by_severity.values())
        + " |"
        for name, by_severity in report["corruptions"].items()
    )
    return {
        "corruptions": True,
        "corruption_n": f"{report['n']:,}",
        "corruption_clean": _percent(report["clean"]),
        "corruption_mean": _percent(report["mean"]),
        "corruption_rows": rows,
    }


def _ensemble_corruption_fields(report: dict | None) -> dict:
    fields = _corruption_fields(report)
    if not report:
        return fields
    ranking = report["ranking"]
    fields["corruption_models"] = "\n".join(
        f"| {report_label(name)} | {_percent(r['clean'])} "
        f"| {_percent(r['mean'])} | {ranking['clean'].index(name) + 1} "
        f"| {ranking['corrupted'].index(name) + 1} |"
        for name, r in report["models"].items()
    )

    def order(names: list[str]) -> str:
        return ", ".join(report_label(n) for n in names)

    fields["corruption_ranking"] = (
        "They rank the same under corruptions as on clean images."
        if ranking["clean"] == ranking["corrupted"]
        else f"The ranking changes under corruptions: {order(ranking['corrupted'])} "
        f"(clean: {order(ranking['clean'])})."
    )
    return fields


def _ensemble_result_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """The ensemble card's results: test accuracy of each member and of both votes, plain and
    (where measured) with flip TTA, and the validation figures the members were chosen on."""
    tta = metrics.get("flip_tta")
    soft, hard = metrics["soft"]["accuracy"], metrics["hard_accuracy"]
    if tta is None:  # measured before flip TTA was
        rows = ["| predictor | test accuracy |", "|---|---:|"]
        rows += [f"| {name} | {_percent(acc)} |" for name, acc in metrics["members"].items()]
        rows += [f"| **soft vote** | **{_percent(soft)}** |", f"| hard vote | {_percent(hard)} |"]
    else:
        rows = ["| predictor | test accuracy | with flip TTA |", "|---|---:|---:|"]
        rows += [
            f"| {name} | {_percent(acc)} | {_percent(tta['members'][name])} |"
            for name, acc in metrics["members"].items()
        ]
        rows += [
            f"| **soft vote** | **{_percent(soft)}** | **{_percent(tta['soft_accuracy'])}** |",
            f"| hard vote | {_percent(hard)} | {_percent(tta['hard_accuracy'])} |",
        ]
    best_member = max(metrics["members"], key=metrics["members"].get)
    fields = {
        "results_table": "\n".join(rows),
        "all_agree": _percent(metrics["agreement"]["all_agree"]),
        "best_member": best_member,
        "soft_gain": f"{100 * (soft - metrics['members'][best_member]):+.2f}",
        "validation": None,
        "tta": tta is not None,
    }
    if "validation" in metrics:
        plain, flipped = metrics["validation"]["plain"], metrics["validation"]["flip_tta"]
        best = best_validation_member(metrics["validation"])
        fields["validation"] = (
            f"On the {plain['n']} validation images no member trained on (where members are "
            f"chosen; the test set chose nothing), the soft vote scores "
            f"{_percent(plain['soft_accuracy'])} ({_percent(flipped['soft_accuracy'])} with flip "
            f"TTA) and its best member, {best}, {_percent(plain['members'][best])} "
            f"({_percent(flipped['members'][best])}). The members' weights, temperatures and best "
            "epochs were chosen on these images too, so they flatter every candidate a little."
        )
    return fields


def render_ensemble_card(
    config: dict[str, Any], metrics: dict[str, Any] | None, repo_id: str | None = None
) -> ModelCard:
    """The card of an ensemble folder: members, voting rule and, once evaluated, its results."""
    kwargs: dict[str, Any] = {
        "voting": config["voting"],
        "tie_break": config["tie_break"],
        "members": config["members"],
        "load_id": repo_id or "path/to/ensemble",
        "metrics": metrics,
    }
    if metrics:
        kwargs.update(_ensemble_result_fields(metrics))
        kwargs.update(_ood_fields(metrics.get("ood"), "ensemble"))
        kwargs.update(_ensemble_corruption_fields(metrics.get("corruptions")))
    results = (
        [test_accuracy_result("accuracy (soft vote)", metrics["soft"]["accuracy"], repo_id)]
        if metrics
        else None
    )
    data = ModelCardData(
        model_name="CIFAR-10 ensemble",
        library_name="keras",
        license="mit",
        pipeline_tag="image-classification",
        datasets=[DATASET_ID],
        tags=["cifar10", "image-classification", "cifar_cnn", "ensemble"],
        eval_results=results,
    )
    return ModelCard.from_template(data, template_path=str(ENSEMBLE_TEMPLATE), **kwargs)
