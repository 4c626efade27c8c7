"""The HTTP server around the Gradio app: FastAPI with `/healthz` (JSON) and `/metrics`
(Prometheus) for operators, the app mounted at `/`."""

from __future__ import annotations

import os

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from webapp.monitoring import METRICS_CONTENT_TYPE, Monitor

#: The largest upload accepted: a phone's full-resolution photo (often 10-20 MB) fits; a large
#: JPEG decodes at reduced scale (cifar_cnn.data.images), so its size costs little memory.
MAX_UPLOAD_MB = 30
MAX_FILE_SIZE = f"{MAX_UPLOAD_MB}mb"
#: Model-bound requests run at once: one per core. TensorFlow already spreads each call over every
#: core, so more at once only makes each request slower (bench/app_load.py).
MODEL_CONCURRENCY = max(
    1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)
#: Requests that may wait for a worker; a caller beyond them gets "Queue is full" at once rather
#: than a minute's wait (about 10 calls/s are answered on 2 cores: 32 waiting is ~3 s).
QUEUE_SIZE = int(os.environ.get("CIFAR_QUEUE_SIZE", "32"))


def create_server(demo: gr.Blocks, monitor: Monitor, css: str | None = None) -> FastAPI:
    """`demo` mounted on FastAPI beside /healthz and /metrics, styled by `css`."""
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
    # mcp_server: each named event is also an MCP tool at /gradio_api/mcp/ (docs/app.md).
    app = gr.mount_gradio_app(
        api,
        demo,
        path="/",
        max_file_size=MAX_FILE_SIZE,
        show_error=True,
        mcp_server=True,
        css=css,
    )
    # Gradio checks that input files were uploaded (not named server paths) only once it
    # counts the demo as launched, which mounting alone does not do.
    demo.has_launched = True
    return app
