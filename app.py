"""CIFAR-10 explorer: the Gradio Space over the cifar_cnn models. UI only: one builder per tab;
the logic behind each event lives in webapp/ and is tested there.

    python app.py                                   # the shipped models in models/
    curl localhost:7860/healthz; curl localhost:7860/metrics      # health and Prometheus
    python app.py --models models/resnet_fast,me/cifar10-seed@v2
    CIFAR_MODELS=me/cifar10-resnet-fast python app.py

API for programs, also MCP tools at /gradio_api/mcp/: /classify, /vote, /explain (api_tools);
each tab's own event is callable too. See docs/app.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI
from gradio.utils import get_upload_folder

from cifar_cnn.data.cifar10 import CLASS_NAMES, REPO_ROOT
from cifar_cnn.explain.gradcam import COLORMAPS, METHODS, cam_stages, colour_scale
from cifar_cnn.trust.corruptions import CORRUPTIONS
from webapp import events
from webapp.history import HISTORY_COLUMNS, add_to_history, history_rows
from webapp.monitoring import Monitor
from webapp.outputs import OutputFolder
from webapp.server import MAX_UPLOAD_MB, MODEL_CONCURRENCY, QUEUE_SIZE, create_server
from webapp.serving import ServedModels, load_models, model_sources
from webapp.uploads import image_handler, shown_error, upload_error_message, uploaded_path
from webapp.video import (
    MAX_CAM_FRAMES,
    MAX_SAMPLED_FRAMES,
    MAX_VIDEO_SECONDS,
    analyse_video,
    live_frame,
    video_answer,
)

EXAMPLES = sorted(str(p) for p in (REPO_ROOT / "examples").glob("*.png"))
# Pictures that are none of the ten classes: everyday photos and Fashion-MNIST test images.
OUTLIER_EXAMPLES = sorted(
    str(p) for p in (REPO_ROOT / "examples" / "outliers").iterdir() if p.suffix in (".png", ".jpg")
)
OUTLIER_LABEL = "Not one of the ten classes (photos, Fashion-MNIST)"
#: The page's own styles: the out-of-distribution banner, and every tab reachable at phone
#: width (Gradio folds tabs that do not fit into a "..." menu; here they wrap onto more rows).
APP_CSS = """
.ood-banner { background: #fff4e5; border: 2px solid #e8a33d; border-radius: 8px;
  padding: 4px 14px !important; }
.ood-banner h3 { margin: 4px 0 !important; color: #8a4b00 !important; }
.ood-banner p { color: #4a3000 !important; }
.tab-wrapper { height: auto !important; }
.tab-wrapper .tab-container { flex-wrap: wrap !important; height: auto !important; }
.tab-wrapper .tab-container.visually-hidden button { font-size: 1px !important;
  padding: 0 !important; min-width: 0 !important; }  /* Gradio measures these to fold tabs */
.tab-wrapper .overflow-menu { display: none !important; }
#model-plots .thumbnail-item, #model-plots button { aspect-ratio: auto !important;
  height: auto !important; }
#model-plots img { width: 100% !important; height: auto !important; object-fit: contain;
  max-width: 900px; }
.whole-gallery .grid-wrap { height: auto !important; max-height: none !important;
  overflow: visible !important; }  /* every picture shown, none behind an inner scroll */
"""
#: Every event that runs a model draws on one pool of MODEL_CONCURRENCY workers.
MODEL_BOUND = {"concurrency_id": "model", "concurrency_limit": MODEL_CONCURRENCY}
#: How long one live camera stream may run before the visitor restarts it.
LIVE_SECONDS = 120
#: A tab's own event: callable by gradio_client, but neither listed in the API page nor an MCP
#: tool (api_tools are); the upload reaches cifar_cnn undecoded (see webapp.uploads).
UI_EVENT = {"api_visibility": "undocumented", "preprocess": False, **MODEL_BOUND}


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

    def examples(self, paths: list[str], fn: Callable, inputs: list, outputs: list, **kwargs):
        examples = gr.Examples(paths, inputs=inputs[0], **kwargs)
        examples.load_input_event.then(fn, inputs, outputs, api_name=False, **MODEL_BOUND)
        return examples


def scroll_into_view(elem_id: str) -> str:
    """Browser-side code that brings an answer into view: on a phone the result column sits
    below the inputs, out of sight once the button is pressed."""
    return f"() => document.getElementById('{elem_id}')?.scrollIntoView({{block: 'nearest'}})"


def banner_slot(elem_id: str) -> gr.Markdown:
    """Where the out-of-distribution warning appears, above the label it qualifies."""
    return gr.Markdown(visible=False, elem_id=elem_id, elem_classes=["ood-banner"])


def banner(check) -> gr.Markdown:
    """The warning in plain words when the check flags the picture; hidden otherwise."""
    return gr.Markdown(events.banner_text(check), visible=check.flagged)


def classify_tab(page: Page, history: gr.State) -> None:
    @page.observed("classify")
    @image_handler
    def classify(image, model, top_k=events.TOP_K):
        result = events.classify(page.served.get(model), image, int(top_k))
        return result.probabilities, page.outputs.image_file(result.view), banner(result.check)

    def remember(history, image, top, view, model, notice):
        if not top or view is None:
            return history
        # Gradio keeps an upload under its own name (in a folder named by its content).
        name = Path(image).name if image else ""
        return add_to_history(history, view, model, top, flagged=bool(notice), file=name)

    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "classify-image")
            model = page.model_choice()
            top_k = gr.Slider(1, 10, value=events.TOP_K, step=1, label="Top classes shown")
            button = gr.Button("Classify", variant="primary")
        with gr.Column(elem_id="classify-result"):
            notice = banner_slot("classify-banner")
            labels = gr.Label(label="Prediction", elem_id="classify-label")
            view = gr.Image(label="What the model sees (32x32)", height=200, elem_id="model-view")
            # A link that reopens the page with this result on it (saved on the server).
            gr.DeepLinkButton("Copy a link to this result", size="sm")
    inputs, outputs = [image, model, top_k], [labels, view, notice]
    page.examples(EXAMPLES, classify, inputs, outputs, label="CIFAR-10 test images")
    page.examples(OUTLIER_EXAMPLES, classify, inputs, outputs, label=OUTLIER_LABEL)
    # Stateless, so that API and MCP callers get a plain answer; the page then records it in
    # this browser session's history.
    answered = button.click(classify, inputs, outputs, api_name="classify_tab", **UI_EVENT)
    answered.then(None, js=scroll_into_view("classify-result"), api_name=False)
    answered.success(
        remember,
        [history, image, labels, view, model, notice],
        [history],
        api_name=False,
        queue=False,
    )


def ensemble_tab(page: Page, history: gr.State) -> None:
    @page.observed("ensemble")
    @image_handler
    def vote(image):
        result = events.ensemble_vote(page.served, image)
        return result.rows, result.soft, banner(result.outlier), result.summary

    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "ensemble-image")
            button = gr.Button("Vote", variant="primary")
        with gr.Column(elem_id="ensemble-result"):
            notice = banner_slot("ensemble-banner")
            soft = gr.Label(label="Soft vote (weighted mean of probabilities)", num_top_classes=3)
            summary = gr.Markdown(elem_id="ensemble-summary")
            table = gr.Dataframe(
                headers=events.ENSEMBLE_COLUMNS, label="Each model's vote", elem_id="ensemble-table"
            )
    outputs = [table, soft, notice, summary]
    page.examples(EXAMPLES, vote, [image], outputs, label="CIFAR-10 test images")
    page.examples(OUTLIER_EXAMPLES, vote, [image], outputs, label=OUTLIER_LABEL)

    def remember(history, image, soft, notice):
        if not soft or not image:
            return history
        _, view = events.model_view(image)
        name = Path(image).name
        return add_to_history(history, view, "ensemble", soft, flagged=bool(notice), file=name)

    answered = button.click(vote, [image], outputs, api_name="ensemble", **UI_EVENT)
    answered.then(None, js=scroll_into_view("ensemble-result"), api_name=False)
    answered.success(
        remember, [history, image, soft, notice], [history], api_name=False, queue=False
    )


def gradcam_tab(page: Page) -> None:
    @page.observed("gradcam")
    @image_handler
    def explain(
        image,
        model,
        class_name="predicted",
        layer="",
        method="gradcam",
        opacity=0.5,
        colormap="jet",
    ):
        result = events.explain(
            page.served.get(model),
            image,
            class_name=None if class_name in (None, "", "predicted") else class_name,
            layer=layer or None,
            method=method,
            opacity=float(opacity),
            colormap=colormap,
        )
        scale = page.outputs.image_file(colour_scale(colormap))
        return page.outputs.image_file(result.overlay), result.caption, scale

    def layers_of(model):
        """The default layer and one per earlier resolution, each named (cam_stages)."""
        choices = list(cam_stages(page.served.get(model).model).items()) if model else []
        value = choices[0][1] if choices else None
        return gr.Dropdown(choices, value=value, label="Layer", elem_id="cam-layer")

    with gr.Row():
        with gr.Column():
            image = page.image("Your image", "gradcam-image")
            model = page.model_choice()
            class_name = gr.Dropdown(
                ["predicted", *CLASS_NAMES], value="predicted", label="Explain the class"
            )
            layer = layers_of(page.default)
            method = gr.Radio(list(METHODS), value="gradcam", label="Method")
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat opacity")
            colormap = gr.Dropdown(list(COLORMAPS), value="jet", label="Colour map")
            button = gr.Button("Explain", variant="primary")
        with gr.Column():
            overlay = gr.Image(
                label="Where the model looked", height=320, elem_id="gradcam-overlay"
            )
            scale = gr.Image(
                page.outputs.image_file(colour_scale("jet")),
                label="Colour scale: no evidence (left) to the most (right)",
                height=60,
                interactive=False,
                elem_id="gradcam-scale",
            )
            caption = gr.Markdown(elem_id="gradcam-caption")
    inputs = [image, model, class_name, layer, method, opacity, colormap]
    outputs = [overlay, caption, scale]
    page.examples(EXAMPLES, explain, inputs, outputs)
    model.change(layers_of, [model], [layer], api_name=False)
    button.click(explain, inputs, outputs, api_name="gradcam", **UI_EVENT)


def compare_tab(page: Page) -> None:
    @page.observed("compare")
    @image_handler
    def compare(image, models=None):
        return [
            (page.outputs.image_file(model.explanation.overlay), model.caption)
            for model in events.compare(page.served, image, models)
        ]

    with gr.Row():
        with gr.Column(scale=1):
            image = page.image("Your image", "compare-image")
            models = gr.CheckboxGroup(page.names, value=page.names, label="Models")
            button = gr.Button("Compare", variant="primary")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Prediction and Grad-CAM per model", columns=3)
    page.examples(EXAMPLES, compare, [image, models], [gallery])
    button.click(compare, [image, models], [gallery], api_name="compare", **UI_EVENT)


def robustness_tab(page: Page) -> None:
    @page.observed("robustness")
    @image_handler
    def robustness(image, model, corruption="gaussian_blur", severity=3):
        result = events.robustness(page.served.get(model), image, corruption, int(severity))
        explanation, c, clean = result.explanation, result.classification, result.clean
        return (
            page.outputs.image_file(clean.view),
            clean.probabilities,
            page.outputs.image_file(result.corrupted),
            c.probabilities,
            banner(c.check),
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
            clean_view = gr.Image(label="Clean: what the model sees", height=200)
            clean_labels = gr.Label(label="Clean prediction", num_top_classes=3)
        with gr.Column():
            view = gr.Image(label="Corrupted", height=200)
            notice = banner_slot("robust-banner")
            labels = gr.Label(label="Prediction", num_top_classes=3)
        with gr.Column():
            overlay = gr.Image(label="Where the model looked", height=200)
            caption = gr.Markdown()
    inputs = [image, model, corruption, severity]
    outputs = [clean_view, clean_labels, view, labels, notice, overlay, caption]
    page.examples(EXAMPLES, robustness, inputs, outputs)
    button.click(robustness, inputs, outputs, api_name="robustness", **UI_EVENT)
    gr.on(  # live updates, once there is an image to update
        [severity.release, corruption.change],
        lambda image, *rest: robustness(image, *rest) if image else [gr.skip()] * 7,
        inputs,
        outputs,
        api_name=False,
        preprocess=False,
        **MODEL_BOUND,
    )


def batch_tab(page: Page) -> None:
    @page.observed("batch")
    def batch(files, models=None, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        """Classify many pictures at once, with one or more models.

        Args:
            files: the pictures: http(s) URLs or base64 data URIs.
            models: the served models to use; empty for the first (the flagship).
        Returns:
            A table with one row per picture and model (file, model, label, confidence,
            warning, error), the same as a CSV file, and what the model saw of each picture.
        """
        if not files:
            raise shown_error("Please add some images first.")
        try:
            rows, views = events.classify_batch(page.served, list(files), models or None, progress)
        except ValueError as error:
            raise shown_error(str(error)) from None
        thumbnails = [
            (page.outputs.image_file(events.enlarge(view, 96)), name) for name, view in views
        ]
        return rows, page.outputs.csv_file(rows, events.BATCH_COLUMNS), thumbnails

    with gr.Row():
        with gr.Column(scale=2):
            files = gr.File(
                file_count="multiple",
                file_types=["image"],
                label="Images",
                height=180,  # many files scroll inside; the button stays in view
                elem_id="batch-files",
            )
        with gr.Column(scale=1):
            models = gr.CheckboxGroup(page.names, value=page.names[:1], label="Models")
            button = gr.Button("Classify all", variant="primary", elem_id="batch-button")
            csv = gr.File(label="Download as CSV")
    table = gr.Dataframe(
        headers=events.BATCH_COLUMNS, label="Predictions", wrap=True, elem_id="batch-table"
    )
    thumbnails = gr.Gallery(
        label="What the model saw", columns=8, height="auto", object_fit="contain",
        allow_preview=False, elem_id="batch-thumbnails", elem_classes=["whole-gallery"],
    )  # fmt: skip
    button.click(
        batch,
        [files, models],
        [table, csv, thumbnails],
        api_name="batch",
        api_visibility="undocumented",
        **MODEL_BOUND,
    )


def video_tab(page: Page) -> None:
    @page.observed("video")
    def video(upload, model, gradcam):
        if not upload:
            raise shown_error("Please upload a video first.")
        try:
            report = analyse_video(page.served.get(model), upload, page.outputs.path, gradcam)
        except ValueError as error:
            raise shown_error(str(error)) from None
        changes = [(page.outputs.image_file(image), caption) for image, caption in report.changes]
        return str(report.timeline), changes, str(report.annotated), report.summary

    gr.Markdown(
        "Upload a video (MP4, WebM, MOV, AVI or GIF; up to "
        f"{MAX_UPLOAD_MB} MB and {MAX_VIDEO_SECONDS} s): "
        f"its frames are classified (at most {MAX_SAMPLED_FRAMES}; a longer video is sampled "
        "more sparsely), with each class's probability over time, the frames where the label "
        "changes, and the video with the labels burnt in."
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.Video(sources=["upload"], label="Your video", elem_id="video-input")
            model = page.model_choice()
            gradcam = gr.Checkbox(
                False, label=f"Burn in Grad-CAM (slower: at most {MAX_CAM_FRAMES} frames)"
            )
            button = gr.Button("Classify the video", variant="primary")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="video-summary")
            timeline = gr.Image(
                label="Each class's probability over time", elem_id="video-timeline"
            )
    with gr.Row():
        changes = gr.Gallery(
            label="Where the label changes", columns=6, height="auto", object_fit="contain"
        )
        annotated = gr.Video(label="The video as the model labels it", elem_id="video-output")
    button.click(
        video,
        [upload, model, gradcam],
        [timeline, changes, annotated, summary],
        api_name="video",
        api_visibility="undocumented",
        **MODEL_BOUND,
    )


def live_tab(page: Page) -> None:
    @page.observed("live")
    def live(frame, model, gradcam, times):
        if frame is None:
            return [gr.skip()] * 5
        try:
            answer, times = live_frame(page.served.get(model), frame, gradcam, times)
        except ValueError as error:
            raise shown_error(str(error)) from None
        result = answer.classification
        overlay = page.outputs.image_file(answer.overlay) if answer.overlay is not None else None
        served = f"**{answer.fps:.1f}** frames per second served"
        return result.probabilities, banner(result.check), overlay, served, times

    gr.Markdown(
        "Point your camera at something: each frame the server can take is classified as it "
        "comes (frames that arrive while one is being answered are dropped, never queued). "
        f"A stream runs up to {LIVE_SECONDS} s; press the button again to go on."
    )
    times = gr.State(None)
    with gr.Row():
        with gr.Column():
            camera = gr.Image(
                sources=["webcam"], streaming=True, type="numpy", label="Your camera",
                elem_id="live-camera",
            )  # fmt: skip
            model = page.model_choice()
            gradcam = gr.Checkbox(False, label="Show Grad-CAM (slower)")
        with gr.Column():
            notice = banner_slot("live-banner")
            labels = gr.Label(label="Prediction", num_top_classes=3, elem_id="live-label")
            rate = gr.Markdown(elem_id="live-fps")
            overlay = gr.Image(label="Where the model looked", height=256)
    camera.stream(
        live,
        [camera, model, gradcam, times],
        [labels, notice, overlay, rate, times],
        # A stream is one long event: while a frame is answered, Gradio keeps only the newest
        # frame that arrives (its data is overwritten), so the rest are dropped, never queued.
        stream_every=0.05,
        # Streams hold their worker for their whole length: their own pool, so live viewers
        # never lock the other tabs out, and a limit, after which the visitor starts again.
        time_limit=LIVE_SECONDS,
        concurrency_id="live",
        concurrency_limit=MODEL_CONCURRENCY,
        api_name=False,
    )


def history_tab(page: Page, history: gr.State, tab: gr.Tab) -> None:
    def show_history(history):
        rows = history_rows(history)
        thumbnails = [
            page.outputs.image_file(events.enlarge(h["thumbnail"], 96)) for h in history or []
        ]
        csv = page.outputs.csv_file(rows, HISTORY_COLUMNS) if rows else None
        return rows, thumbnails, csv

    gr.Markdown(
        "Your predictions in this browser session, newest first (Classify and Ensemble; kept "
        "only in this session; the server keeps no record, and deletes the CSV and thumbnails "
        "it makes for you within an hour)."
    )
    with gr.Row():
        clear = gr.Button("Clear the history", size="sm", elem_id="history-clear")
        csv = gr.File(label="Download as CSV", elem_id="history-csv")
    table = gr.Dataframe(headers=HISTORY_COLUMNS, label="History", wrap=True, elem_id="history")
    gallery = gr.Gallery(
        label="What the model saw (same order as the table)",
        columns=8,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        fit_columns=False,  # a few thumbnails stay thumbnail-sized
        elem_id="history-gallery",
        elem_classes=["whole-gallery"],
    )
    tab.select(show_history, [history], [table, gallery, csv], api_name=False)
    clear.click(lambda: ([], [], [], None), None, [history, table, gallery, csv], api_name=False)


def models_tab(page: Page, demo: gr.Blocks) -> None:
    @page.observed("models")
    def model_card(model):
        return events.model_card(page.served.get(model))

    model = page.model_choice()
    card = gr.Markdown()
    # One plot a row, each whole at its own aspect ratio (squares would crop them).
    plots = gr.Gallery(
        label="Plots", columns=1, object_fit="contain", elem_id="model-plots",
        elem_classes=["whole-gallery"],
    )  # fmt: skip
    model.change(
        model_card, [model], [card, plots], api_name="models", api_visibility="undocumented"
    )
    demo.load(model_card, [model], [card, plots], api_name=False)


def api_tools(page: Page) -> None:
    """Stateless endpoints, each with one output, for programs: gradio_client's /classify, /vote,
    /explain and /classify_video, and the MCP tools of the same names. Their docstrings are the
    tools' descriptions; the tabs' own events are callable too but not listed (docs/app.md)."""

    @page.observed("api_classify")
    @image_handler
    def classify(image, model, top_k=3):
        """Classify a picture into the ten CIFAR-10 classes, with a warning when it may be none.

        Args:
            image: the picture: an http(s) URL or a base64 data URI of a PNG, JPEG, WebP...
            model: which served model answers (resnet_fast, the flagship, unless told).
            top_k: how many of the most likely classes to return, 1 to 10.
        Returns:
            JSON: label, probabilities (the top_k classes, calibrated), out_of_distribution
            (true when the model's detector flags the picture) and warning (why, in plain
            words; null when not flagged).
        """
        return events.classify(page.served.get(model), image, int(top_k)).as_dict()

    @page.observed("api_vote")
    @image_handler
    def vote(image):
        """Ask the ensemble's models and vote: the ensemble's label for a picture.

        Args:
            image: the picture: an http(s) URL or a base64 data URI of a PNG, JPEG, WebP...
        Returns:
            JSON: label and probabilities of the soft vote (validation-weighted mean),
            majority_label, all_agree, each model's label and confidence, out_of_distribution
            (the ensemble's own detector, else most models' checks) and warning.
        """
        return events.ensemble_vote(page.served, image).answer()

    @page.observed("api_explain")
    @image_handler
    def explain(image, model, class_name="predicted"):
        """Where the model looked for a class in a picture: a Grad-CAM heat map laid over it.

        Args:
            image: the picture: an http(s) URL or a base64 data URI of a PNG, JPEG, WebP...
            model: which served model to explain (resnet_fast, the flagship, unless told).
            class_name: the class to explain, or "predicted" for the model's own answer.
        Returns:
            A 256x256 PNG: the centre-cropped picture, hot where the evidence for the class
            lies. Call classify for the probabilities.
        """
        chosen = None if class_name in (None, "", "predicted") else class_name
        result = events.explain(page.served.get(model), image, class_name=chosen)
        return page.outputs.image_file(result.overlay)

    @page.observed("api_video")
    def classify_video(video, model):
        """Classify a video's frames into the ten CIFAR-10 classes: what it shows, and when.

        Args:
            video: the video: an http(s) URL or a base64 data URI (MP4, WebM, MOV, AVI, GIF).
            model: which served model answers (resnet_fast, the flagship, unless told).
        Returns:
            JSON: duration and fps, every (the sampling step), segments (start, end, label),
            flagged (how many frames may not show one of the ten classes) and frames (time,
            label, confidence, out_of_distribution per classified frame).
        """
        if not video:
            raise shown_error("Please give a video.")
        try:
            path = uploaded_path(video, upload_folder=get_upload_folder())
            return video_answer(page.served.get(model), path)
        except ValueError as error:
            raise shown_error(upload_error_message(error, video)) from None

    with gr.Column(visible=False):  # inputs and outputs for programs; the page never shows them
        image = gr.Image(type="filepath", label="image")
        model = page.model_choice()
        top_k = gr.Number(3, precision=0, minimum=1, maximum=10, label="top_k")
        class_name = gr.Dropdown(["predicted", *CLASS_NAMES], value="predicted", label="class")
        video = gr.Video(label="video")
        answer, overlay = gr.JSON(), gr.Image()
        trigger = gr.Button()
    for fn, inputs, output in [
        (classify, [image, model, top_k], answer),
        (vote, [image], answer),
        (explain, [image, model, class_name], overlay),
        (classify_video, [video, model], answer),
    ]:
        trigger.click(fn, inputs, output, api_name=fn.__name__, preprocess=False, **MODEL_BOUND)


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
            ensemble_tab(page, history)
        with gr.Tab("Grad-CAM"):
            gradcam_tab(page)
        with gr.Tab("Compare"):
            compare_tab(page)
        with gr.Tab("Robustness"):
            robustness_tab(page)
        with gr.Tab("Batch"):
            batch_tab(page)
        with gr.Tab("Video"):
            video_tab(page)
        with gr.Tab("Live"):
            live_tab(page)
        with gr.Tab("History") as tab:
            history_tab(page, history, tab)
        with gr.Tab("Models"):
            models_tab(page, demo)
        api_tools(page)
    # Beyond QUEUE_SIZE waiting requests, callers get Gradio's "Queue is full" error at once.
    demo.queue(default_concurrency_limit=MODEL_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def build_app(served: ServedModels) -> FastAPI:
    """The whole server: the demo mounted on FastAPI beside /healthz and /metrics."""
    monitor = Monitor(served)
    return create_server(build_demo(served, monitor), monitor, css=APP_CSS)


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
