"""The HTTP server around the Gradio app: FastAPI with `/healthz` (JSON) and `/metrics`
(Prometheus) for operators, the app mounted at `/`."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from webapp.monitoring import METRICS_CONTENT_TYPE, Monitor

MAX_FILE_SIZE = "10mb"


def create_server(demo: gr.Blocks, monitor: Monitor) -> FastAPI:
    """`demo` mounted on FastAPI beside /healthz and /metrics."""
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
    app = gr.mount_gradio_app(api, demo, path="/", max_file_size=MAX_FILE_SIZE, show_error=True)
    # Gradio checks that input files were uploaded (not named server paths) only once it
    # counts the demo as launched, which mounting alone does not do.
    demo.has_launched = True
    return app
