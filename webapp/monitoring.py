"""Health and Prometheus metrics for the served models: what `/healthz` and `/metrics` report.

>>> from webapp.monitoring import Monitor
>>> monitor = Monitor(served)                     # a webapp.serving.ServedModels
>>> classify = monitor.observed("classify")(classify)   # counts, times and classifies errors
>>> monitor.health()                              # {"status": "ok", "models": {...}, ...}
>>> monitor.metrics_text()                        # Prometheus text exposition format

Each Monitor has its own registry, so several apps (or tests) in one process never mix counts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cifar_cnn.hub.layout import weights_digest
from webapp.serving import ServedModels

#: Latency buckets (seconds) around what the app does: 5 ms classifications to multi-second batches.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class Monitor:
    """Request counters, latency histograms, errors by kind and model load failures."""

    def __init__(self, served: ServedModels):
        self.served = served
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cifar_requests", "Requests by endpoint and model", ["endpoint", "model"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "cifar_request_seconds", "Request latency by endpoint", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "cifar_errors", "Failed requests by endpoint and kind (bad_input or internal)",
            ["endpoint", "kind"], registry=self.registry,
        )  # fmt: skip
        self.load_failures = Gauge(
            "cifar_model_load_failures", "Model sources that failed to load at start",
            registry=self.registry,
        )  # fmt: skip
        self.models_loaded = Gauge(
            "cifar_models_loaded", "Models being served", registry=self.registry
        )
        self.load_failures.set(len(served.failures))
        self.models_loaded.set(len(served.names))

    def observed(self, endpoint: str) -> Callable[[Callable], Callable]:
        """Decorate an app handler: count it (per model, when its second argument names a
        served model, else "all"), time it, and count its failures by kind. A ValueError (or
        Gradio's user-facing error) is bad input; anything else is internal."""

        def decorate(function: Callable) -> Callable:
            @functools.wraps(function)
            def wrapper(*args, **kwargs):
                model = args[1] if len(args) > 1 and args[1] in self.served.names else "all"
                self.requests.labels(endpoint, model).inc()
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                except Exception as error:
                    self.errors.labels(endpoint, _kind(error)).inc()
                    raise
                finally:
                    self.latency.labels(endpoint).observe(time.perf_counter() - started)

            return wrapper

        return decorate

    def health(self) -> dict[str, Any]:
        """ "ok" while every configured model serves; "degraded" if some failed to load;
        "down" if none serves. With each model's architecture, version and weights hash."""
        models = {
            name: {
                "architecture": c.config.get("architecture"),
                "code_version": c.config.get("training", {}).get("code_version"),
                "weights_sha256": weights_digest(c.config),
            }
            for name, c in self.served.classifiers.items()
        }
        if not models:
            status = "down"
        elif self.served.failures:
            status = "degraded"
        else:
            status = "ok"
        # Only the kind of each failure: the full reason can name server paths, so it goes to
        # the server's log (app.py prints it), not to every visitor.
        failures = {name: failure.error_type for name, failure in self.served.failures.items()}
        return {"status": status, "models": models, "failures": failures}

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)


def _kind(error: Exception) -> str:
    return "bad_input" if isinstance(error, (ValueError, gr.Error)) else "internal"
