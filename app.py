"""CIFAR-10 explorer: the Gradio Space over the cifar_cnn models. UI only: one builder per tab;
the logic behind each event lives in webapp/ and is tested there.

    python app.py                                   # the shipped models in models/
    curl localhost:7860/healthz; curl localhost:7860/metrics      # health and Prometheus
    python app.py --models models/resnet_fast,me/cifar10-seed@v2
    CIFAR_MODELS=me/cifar10-resnet-fast python app.py

API (gradio_client): /classify, /ensemble, /gradcam, /compare, /robustness, /batch, /models;
see docs/app.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import uvicorn
from fastapi import FastAPI

from cifar_cnn.data.cifar10 import CLASS_NAMES, REPO_ROOT
from cifar_cnn.explain.gradcam import COLORMAPS, METHODS, cam_layers
from cifar_cnn.trust.corruptions import CORRUPTIONS
from webapp import events
from webapp.history import HISTORY_COLUMNS, add_to_history
from webapp.monitoring import Monitor
from webapp.outputs import OutputFolder
from webapp.server import create_server
from webapp.serving import ServedModels, load_models, model_sources
from webapp.uploads import image_handler

EXAMPLES = sorted(str(p) for p in (REPO_ROOT / "examples").glob("*.png"))
# Fashion-MNIST test images: pictures that are none of the ten classes.
OUTLIER_EXAMPLES = sorted(str(p) for p in (REPO_ROOT / "examples" / "outliers").glob("*.png"))


@dataclass
class Page:
    """What every tab's builder needs: the models, request monitoring, and the output folder
    (image outputs go out as files written atomically; see webapp.outputs.image_file)."""

    served: ServedModels
    observed: Callable[[str], Callable]
    outputs: OutputFolder

    @property
    def names(self) -> list[str]:
        return self.served.names

    @property
    def default(self) -> str | None:
        return self.names[0] if self.names else None

    def image(self, label: str, elem_id: str, height: int = 300) -> gr.Image:
        return gr.Image(type="filepath", label=label, height=height, elem_id=elem_id)

    def model_choice(self) -> gr.Dropdown:
        return gr.Dropdown(self.names, value=self.default, label="Model")


def classify_tab(page: Page, history: gr.State) -> None:
    @page.observed("classify")
    @image_handler
    def classify(image, model, top_k, history):
        result = events.classify(page.served.get(model), image, int(top_k))
        history = add_to_history(history, result.view, model, result.top)
        return result.top, page.outputs.image_file(result.view), result.notice, history

    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "classify-image")
            model = page.model_choice()
            top_k = gr.Slider(1, 10, value=events.TOP_K, step=1, label="Top classes shown")
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            labels = gr.Label(label="Prediction")
            notice = gr.Markdown()
            view = gr.Image(label="What the model sees (32x32)", height=200, elem_id="model-view")
    gr.Examples(EXAMPLES, inputs=image, label="CIFAR-10 test images")
    gr.Examples(OUTLIER_EXAMPLES, inputs=image, label="Not one of the ten classes (Fashion-MNIST)")
    button.click(
        classify,
        [image, model, top_k, history],
        [labels, view, notice, history],
        api_name="classify",
        preprocess=False,
    )


def ensemble_tab(page: Page) -> None:
    @page.observed("ensemble")
    @image_handler
    def ensemble(image):
        vote = events.ensemble_vote(page.served, image)
        return vote.rows, vote.soft, vote.summary

    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "ensemble-image")
            button = gr.Button("Vote", variant="primary")
        with gr.Column():
            soft = gr.Label(label="Soft vote (weighted mean of probabilities)")
            summary = gr.Markdown()
    table = gr.Dataframe(
        headers=["model", "vote", "confidence", *CLASS_NAMES], label="Each model's vote"
    )
    gr.Examples(EXAMPLES + OUTLIER_EXAMPLES, inputs=image)
    button.click(ensemble, [image], [table, soft, summary], api_name="ensemble", preprocess=False)


def gradcam_tab(page: Page, demo: gr.Blocks) -> None:
    @page.observed("gradcam")
    @image_handler
    def gradcam(image, model, class_name, layer, method, opacity, colormap):
        result = events.explain(
            page.served.get(model),
            image,
            class_name=None if class_name in (None, "", "predicted") else class_name,
            layer=layer or None,
            method=method,
            opacity=float(opacity),
            colormap=colormap,
        )
        return page.outputs.image_file(result.overlay), result.caption

    def layers_of(model):
        choices = cam_layers(page.served.get(model).model) if model else []
        return gr.Dropdown(choices=["", *choices], value="")

    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "gradcam-image")
            model = page.model_choice()
            class_name = gr.Dropdown(
                ["predicted", *CLASS_NAMES], value="predicted", label="Explain the class"
            )
            layer = gr.Dropdown([""], value="", label="Layer (empty: the default)")
            method = gr.Radio(list(METHODS), value="gradcam", label="Method")
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat opacity")
            colormap = gr.Dropdown(list(COLORMAPS), value="jet", label="Colour map")
            button = gr.Button("Explain", variant="primary")
        with gr.Column():
            overlay = gr.Image(
                label="Where the model looked", height=320, elem_id="gradcam-overlay"
            )
            caption = gr.Markdown()
    gr.Examples(EXAMPLES, inputs=image)
    model.change(layers_of, [model], [layer], api_name=False)
    demo.load(layers_of, [model], [layer], api_name=False)  # the default model's, at once
    button.click(
        gradcam,
        [image, model, class_name, layer, method, opacity, colormap],
        [overlay, caption],
        api_name="gradcam",
        preprocess=False,
    )


def compare_tab(page: Page) -> None:
    @page.observed("compare")
    @image_handler
    def compare(image, models):
        panels = []
        for name in models or page.names:
            result = events.explain(page.served.get(name), image)
            caption = f"{name}: {result.predicted_class} {100 * result.probability:.0f}%"
            panels.append((page.outputs.image_file(result.overlay), caption))
        return panels

    with gr.Row():
        with gr.Column(scale=1):
            image = page.image("Your image", "compare-image")
            models = gr.CheckboxGroup(page.names, value=page.names, label="Models")
            button = gr.Button("Compare", variant="primary")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Prediction and Grad-CAM per model", columns=3)
    gr.Examples(EXAMPLES, inputs=image)
    button.click(compare, [image, models], [gallery], api_name="compare", preprocess=False)


def robustness_tab(page: Page) -> None:
    @page.observed("robustness")
    @image_handler
    def robustness(image, model, corruption, severity):
        result = events.robustness(page.served.get(model), image, corruption, int(severity))
        explanation, c = result.explanation, result.classification
        return (
            page.outputs.image_file(result.corrupted),
            c.top,
            c.notice,
            page.outputs.image_file(explanation.overlay),
            explanation.caption + " (on the corrupted view)",
        )

    gr.Markdown(
        "How does the model cope with a blurred, noisy, dark or compressed picture? "
        "Apply a corruption to the 32x32 view (as `cifar-evaluate --corruptions` does "
        "to the test set) and watch the prediction and Grad-CAM change with severity."
    )
    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "robust-image", height=240)
            model = page.model_choice()
            corruption = gr.Dropdown(list(CORRUPTIONS), value="gaussian_blur", label="Corruption")
            severity = gr.Slider(0, 5, value=3, step=1, label="Severity (0: none)")
            button = gr.Button("Corrupt and classify", variant="primary")
        with gr.Column():
            view = gr.Image(label="What the model sees, corrupted", height=200)
            labels = gr.Label(label="Prediction", num_top_classes=3)
            notice = gr.Markdown()
        with gr.Column():
            overlay = gr.Image(label="Where the model looked", height=200)
            caption = gr.Markdown()
    gr.Examples(EXAMPLES, inputs=image)
    inputs = [image, model, corruption, severity]
    outputs = [view, labels, notice, overlay, caption]
    button.click(robustness, inputs, outputs, api_name="robustness", preprocess=False)
    gr.on(  # live updates, once there is an image to update
        [severity.release, corruption.change],
        lambda image, *rest: robustness(image, *rest) if image else [gr.skip()] * 5,
        inputs,
        outputs,
        api_name=False,
        preprocess=False,
    )


def batch_tab(page: Page) -> None:
    @page.observed("batch")
    def batch(files, models, progress=gr.Progress()):  # noqa: B008 (Gradio injects progress)
        if not files:
            raise gr.Error("Please add some images first.")
        try:
            rows = events.classify_batch(page.served, list(files), models or None, progress)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        return rows, page.outputs.csv_file(rows, events.BATCH_COLUMNS)

    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(
                file_count="multiple", file_types=["image"], label="Images", elem_id="batch-files"
            )
            models = gr.CheckboxGroup(page.names, value=page.names[:1], label="Models")
            button = gr.Button("Classify all", variant="primary")
        with gr.Column(scale=2):
            table = gr.Dataframe(headers=events.BATCH_COLUMNS, label="Predictions")
            csv = gr.File(label="Download as CSV")
    button.click(batch, [files, models], [table, csv], api_name="batch")


def history_tab(page: Page, history: gr.State, tab: gr.Tab) -> None:
    def show_history(history):
        history = history or []
        table = [[h[c] for c in HISTORY_COLUMNS] for h in history]
        thumbnails = [
            (
                page.outputs.image_file(events.enlarge(h["thumbnail"], 96)),
                f"{h['label']} ({h['model']})",
            )
            for h in history
        ]
        return table, thumbnails

    gr.Markdown("Your predictions in this browser session (kept only in this session).")
    table = gr.Dataframe(headers=HISTORY_COLUMNS, label="History")
    gallery = gr.Gallery(
        label="What the model saw",
        columns=8,
        height=220,
        object_fit="contain",
        allow_preview=False,
        fit_columns=False,  # a few thumbnails stay thumbnail-sized
        elem_id="history-gallery",
    )
    tab.select(show_history, [history], [table, gallery], api_name=False)


def models_tab(page: Page, demo: gr.Blocks) -> None:
    @page.observed("models")
    def describe(model):
        return events.model_card(page.served.get(model))

    model = page.model_choice()
    card = gr.Markdown()
    plots = gr.Gallery(label="Plots", columns=2, height="auto")
    model.change(describe, [model], [card, plots], api_name="models")
    demo.load(describe, [model], [card, plots], api_name=False)


def build_demo(served: ServedModels, monitor: Monitor | None = None) -> gr.Blocks:
    """The Space's UI over `served`; events are counted by `monitor` (a new one if None)."""
    page = Page(served, (monitor or Monitor(served)).observed, OutputFolder())
    # Gradio's own cache (uploads, copies of outputs): files older than an hour go, hourly.
    with gr.Blocks(title="CIFAR-10 explorer", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# CIFAR-10 explorer\n"
            "What do CPU-trained CIFAR-10 models see in your picture, and why? Upload any image: "
            "it is centre-cropped and shrunk to the 32x32 pixels the models were trained on. "
            "They know ten classes: " + ", ".join(CLASS_NAMES) + "."
        )
        if served.failures:
            failed = ", ".join(f"`{name}`" for name in served.failures)
            gr.Markdown(
                f"**Some models failed to load** and are not offered: {failed} "
                "(the reasons are in the server's log)."
            )
        history = gr.State([])  # this browser session's predictions; nothing kept on the server
        with gr.Tab("Classify"):
            classify_tab(page, history)
        with gr.Tab("Ensemble"):
            ensemble_tab(page)
        with gr.Tab("Grad-CAM"):
            gradcam_tab(page, demo)
        with gr.Tab("Compare"):
            compare_tab(page)
        with gr.Tab("Robustness"):
            robustness_tab(page)
        with gr.Tab("Batch"):
            batch_tab(page)
        with gr.Tab("History") as tab:
            history_tab(page, history, tab)
        with gr.Tab("Models"):
            models_tab(page, demo)
    demo.queue(default_concurrency_limit=2)
    return demo


def build_app(served: ServedModels) -> FastAPI:
    """The whole server: the demo mounted on FastAPI beside /healthz and /metrics."""
    monitor = Monitor(served)
    return create_server(build_demo(served, monitor), monitor)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the CIFAR-10 explorer.")
    parser.add_argument("--models", help="comma-separated folders or Hub repo ids (@revision)")
    # A Hugging Face Space sets GRADIO_SERVER_NAME=0.0.0.0; locally we stay on the loopback.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args()
    served = load_models(model_sources(args.models))
    for failure in served.failures.values():
        print(f"Model {failure.source} failed to load: {failure.reason}")
    print(f"Serving: {', '.join(served.names) or 'no models'}")
    print(f"Open http://{args.host}:{args.port}/ (health: /healthz, metrics: /metrics)")
    uvicorn.run(
        build_app(served),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown forever
    )


if __name__ == "__main__":
    main()
