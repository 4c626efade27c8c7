"""CIFAR-10 explorer: a Gradio app over the cifar_cnn models. UI wiring only; the logic lives in
cifar_cnn.service and is tested there.

    python app.py                                   # the shipped models in models/
    curl localhost:7860/healthz; curl localhost:7860/metrics      # health and Prometheus
    python app.py --models models/resnet_fast,me/cifar10-seed@v2
    CIFAR_MODELS=me/cifar10-resnet-fast python app.py

API (gradio_client): /classify, /ensemble, /gradcam, /compare, /robustness, /batch, /models;
see README.
"""

from __future__ import annotations

import argparse
import functools
import os

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from gradio.utils import get_upload_folder

from cifar_cnn import service  # importing cifar_cnn turns oneDNN on before TensorFlow loads
from cifar_cnn.corruptions import CORRUPTIONS
from cifar_cnn.data import CLASS_NAMES, REPO_ROOT
from cifar_cnn.gradcam import COLORMAPS, METHODS
from cifar_cnn.monitoring import METRICS_CONTENT_TYPE, Monitor

EXAMPLES = sorted(str(p) for p in (REPO_ROOT / "examples").glob("*.png"))
# Fashion-MNIST test images: pictures that are none of the ten classes.
OUTLIER_EXAMPLES = sorted(str(p) for p in (REPO_ROOT / "examples" / "outliers").glob("*.png"))
MAX_FILE_SIZE = "10mb"


def image_handler(function):
    """For events whose first input is an uploaded image, registered with `preprocess=False`:
    pass the file's path on (cifar_cnn decodes it, so every bad file gets the library's own
    message) and show a bad upload or choice as a message in the UI and a clear API error."""

    @functools.wraps(function)
    def wrapper(upload, *args):
        if upload is None:
            raise gr.Error("Please upload an image first.")
        try:
            path = service.uploaded_path(upload, upload_folder=get_upload_folder())
            return function(path, *args)
        except ValueError as error:
            raise gr.Error(service.upload_error_message(error, upload)) from None

    return wrapper


def build_demo(served: service.ServedModels, monitor: Monitor | None = None) -> gr.Blocks:
    names = served.names
    default = names[0] if names else None
    observed = (monitor or Monitor(served)).observed
    # Image outputs go out as files written atomically (see service.image_file).
    outputs = service.OutputFolder()
    as_file = outputs.image_file

    @observed("classify")
    @image_handler
    def classify(image, model, top_k, history):
        result = service.classify(served.get(model), image, int(top_k))
        history = service.add_to_history(history, result.view, model, result)
        return result.top, as_file(result.view), result.notice, history

    @observed("batch")
    def batch(files, models, progress=gr.Progress()):  # noqa: B008 (Gradio injects progress)
        if not files:
            raise gr.Error("Please add some images first.")
        try:
            rows = service.classify_batch(served, list(files), models or None, progress)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        return rows, outputs.csv_file(rows)

    def show_history(history):
        history = history or []
        table = [[h[c] for c in service.HISTORY_COLUMNS] for h in history]
        thumbnails = [
            (as_file(service.enlarge(h["thumbnail"], 96)), f"{h['label']} ({h['model']})")
            for h in history
        ]
        return table, thumbnails

    @observed("ensemble")
    @image_handler
    def ensemble(image):
        vote = service.ensemble_vote(served, image)
        return vote.rows, vote.soft, vote.summary

    @observed("gradcam")
    @image_handler
    def gradcam(image, model, class_name, layer, method, opacity, colormap):
        result = service.explain(
            served.get(model),
            image,
            class_name=None if class_name in (None, "", "predicted") else class_name,
            layer=layer or None,
            method=method,
            opacity=float(opacity),
            colormap=colormap,
        )
        caption = (
            f"Grad-CAM of **{result.explained_class}** ({100 * result.probability:.0f}%) at layer "
            f"`{result.layer}`; the model predicts **{result.predicted_class}**."
        )
        return as_file(result.overlay), caption

    @observed("compare")
    @image_handler
    def compare(image, models):
        chosen = models or names
        panels = []
        for name in chosen:
            result = service.explain(served.get(name), image)
            caption = f"{name}: {result.predicted_class} {100 * result.probability:.0f}%"
            panels.append((as_file(result.overlay), caption))
        return panels

    @observed("robustness")
    @image_handler
    def robustness(image, model, corruption, severity):
        result = service.robustness(served.get(model), image, corruption, int(severity))
        explanation = result.explanation
        caption = (
            f"Grad-CAM of **{explanation.predicted_class}** "
            f"({100 * explanation.probability:.0f}%) on the corrupted view."
        )
        c = result.classification
        return as_file(result.corrupted), c.top, c.notice, as_file(explanation.overlay), caption

    @observed("models")
    def describe(model):
        text, plots = service.model_card(served.get(model))
        return text, plots

    def layers_of(model):
        from cifar_cnn.probing import spatial_layers

        choices = spatial_layers(served.get(model).model)
        return gr.Dropdown(choices=[""] + choices, value="")

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
            with gr.Row():
                with gr.Column():
                    image = gr.Image(
                        type="filepath", label="Your image", height=300, elem_id="classify-image"
                    )
                    model = gr.Dropdown(names, value=default, label="Model")
                    top_k = gr.Slider(1, 10, value=5, step=1, label="Top classes shown")
                    button = gr.Button("Classify", variant="primary")
                with gr.Column():
                    labels = gr.Label(label="Prediction")
                    notice = gr.Markdown()
                    view = gr.Image(
                        label="What the model sees (32x32)", height=200, elem_id="model-view"
                    )
            gr.Examples(EXAMPLES, inputs=image, label="CIFAR-10 test images")
            gr.Examples(
                OUTLIER_EXAMPLES, inputs=image, label="Not one of the ten classes (Fashion-MNIST)"
            )
            button.click(
                classify,
                [image, model, top_k, history],
                [labels, view, notice, history],
                api_name="classify",
                preprocess=False,
            )

        with gr.Tab("Ensemble"):
            with gr.Row():
                with gr.Column():
                    e_image = gr.Image(
                        type="filepath", label="Your image", height=300, elem_id="ensemble-image"
                    )
                    e_button = gr.Button("Vote", variant="primary")
                with gr.Column():
                    e_soft = gr.Label(label="Soft vote (weighted mean of probabilities)")
                    e_summary = gr.Markdown()
            e_table = gr.Dataframe(
                headers=["model", "vote", "confidence", *CLASS_NAMES], label="Each model's vote"
            )
            gr.Examples(EXAMPLES + OUTLIER_EXAMPLES, inputs=e_image)
            e_button.click(
                ensemble,
                [e_image],
                [e_table, e_soft, e_summary],
                api_name="ensemble",
                preprocess=False,
            )

        with gr.Tab("Grad-CAM"):
            with gr.Row():
                with gr.Column():
                    g_image = gr.Image(
                        type="filepath", label="Your image", height=300, elem_id="gradcam-image"
                    )
                    g_model = gr.Dropdown(names, value=default, label="Model")
                    g_class = gr.Dropdown(["predicted", *CLASS_NAMES], value="predicted",
                                          label="Explain the class")  # fmt: skip
                    g_layer = gr.Dropdown([""], value="", label="Layer (empty: the default)")
                    g_method = gr.Radio(list(METHODS), value="gradcam", label="Method")
                    g_opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat opacity")
                    g_colormap = gr.Dropdown(list(COLORMAPS), value="jet", label="Colour map")
                    g_button = gr.Button("Explain", variant="primary")
                with gr.Column():
                    g_overlay = gr.Image(
                        label="Where the model looked", height=320, elem_id="gradcam-overlay"
                    )
                    g_caption = gr.Markdown()
            gr.Examples(EXAMPLES, inputs=g_image)
            g_model.change(layers_of, [g_model], [g_layer], api_name=False)
            g_button.click(
                gradcam,
                [g_image, g_model, g_class, g_layer, g_method, g_opacity, g_colormap],
                [g_overlay, g_caption],
                api_name="gradcam",
                preprocess=False,
            )

        with gr.Tab("Compare"):
            with gr.Row():
                with gr.Column(scale=1):
                    c_image = gr.Image(
                        type="filepath", label="Your image", height=300, elem_id="compare-image"
                    )
                    c_models = gr.CheckboxGroup(names, value=names, label="Models")
                    c_button = gr.Button("Compare", variant="primary")
                with gr.Column(scale=2):
                    c_gallery = gr.Gallery(label="Prediction and Grad-CAM per model", columns=3)
            gr.Examples(EXAMPLES, inputs=c_image)
            c_button.click(
                compare, [c_image, c_models], [c_gallery], api_name="compare", preprocess=False
            )

        with gr.Tab("Robustness"):
            gr.Markdown(
                "How does the model cope with a blurred, noisy, dark or compressed picture? "
                "Apply a corruption to the 32x32 view (as `cifar-evaluate --corruptions` does "
                "to the test set) and watch the prediction and Grad-CAM change with severity."
            )
            with gr.Row():
                with gr.Column():
                    r_image = gr.Image(
                        type="filepath", label="Your image", height=240, elem_id="robust-image"
                    )
                    r_model = gr.Dropdown(names, value=default, label="Model")
                    r_corruption = gr.Dropdown(
                        list(CORRUPTIONS), value="gaussian_blur", label="Corruption"
                    )
                    r_severity = gr.Slider(0, 5, value=3, step=1, label="Severity (0: none)")
                    r_button = gr.Button("Corrupt and classify", variant="primary")
                with gr.Column():
                    r_view = gr.Image(label="What the model sees, corrupted", height=200)
                    r_labels = gr.Label(label="Prediction", num_top_classes=3)
                    r_notice = gr.Markdown()
                with gr.Column():
                    r_overlay = gr.Image(label="Where the model looked", height=200)
                    r_caption = gr.Markdown()
            gr.Examples(EXAMPLES, inputs=r_image)
            r_inputs = [r_image, r_model, r_corruption, r_severity]
            r_outputs = [r_view, r_labels, r_notice, r_overlay, r_caption]
            r_button.click(robustness, r_inputs, r_outputs, api_name="robustness", preprocess=False)
            gr.on(  # live updates, once there is an image to update
                [r_severity.release, r_corruption.change],
                lambda image, *rest: robustness(image, *rest) if image else [gr.skip()] * 5,
                r_inputs,
                r_outputs,
                api_name=False,
                preprocess=False,
            )

        with gr.Tab("Batch"):
            with gr.Row():
                with gr.Column(scale=1):
                    b_files = gr.File(file_count="multiple", file_types=["image"],
                                      label="Images", elem_id="batch-files")  # fmt: skip
                    b_models = gr.CheckboxGroup(names, value=names[:1], label="Models")
                    b_button = gr.Button("Classify all", variant="primary")
                with gr.Column(scale=2):
                    b_table = gr.Dataframe(headers=service.BATCH_COLUMNS, label="Predictions")
                    b_csv = gr.File(label="Download as CSV")
            b_button.click(batch, [b_files, b_models], [b_table, b_csv], api_name="batch")

        with gr.Tab("History") as history_tab:
            gr.Markdown("Your predictions in this browser session (kept only in this session).")
            h_table = gr.Dataframe(headers=service.HISTORY_COLUMNS, label="History")
            h_gallery = gr.Gallery(
                label="What the model saw",
                columns=8,
                height=220,
                object_fit="contain",
                allow_preview=False,
                fit_columns=False,  # a few thumbnails stay thumbnail-sized
                elem_id="history-gallery",
            )
            history_tab.select(show_history, [history], [h_table, h_gallery], api_name=False)

        with gr.Tab("Models"):
            m_model = gr.Dropdown(names, value=default, label="Model")
            m_card = gr.Markdown()
            m_plots = gr.Gallery(label="Plots", columns=2, height="auto")
            m_model.change(describe, [m_model], [m_card, m_plots], api_name="models")
            demo.load(describe, [m_model], [m_card, m_plots], api_name=False)

    demo.queue(default_concurrency_limit=2)
    return demo


def build_app(served: service.ServedModels) -> FastAPI:
    """The demo mounted on FastAPI beside /healthz (JSON) and /metrics (Prometheus)."""
    monitor = Monitor(served)
    api = FastAPI(title="CIFAR-10 explorer")

    @api.get("/healthz")
    def healthz():
        health = monitor.health()
        return JSONResponse(health, status_code=503 if health["status"] == "down" else 200)

    @api.get("/metrics")
    def metrics():
        return Response(monitor.metrics_text(), media_type=METRICS_CONTENT_TYPE)

    # show_error: a bad upload's reason reaches the visitor and API clients (our messages
    # carry no secrets; tokens are never part of them).
    demo = build_demo(served, monitor)
    app = gr.mount_gradio_app(api, demo, path="/", max_file_size=MAX_FILE_SIZE, show_error=True)
    # Gradio checks that input files were uploaded (not named server paths) only once it
    # counts the demo as launched, which mounting alone does not do.
    demo.has_launched = True
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the CIFAR-10 explorer.")
    parser.add_argument("--models", help="comma-separated folders or Hub repo ids (@revision)")
    # A Hugging Face Space sets GRADIO_SERVER_NAME=0.0.0.0; locally we stay on the loopback.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args()
    served = service.load_models(service.model_sources(args.models))
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
