"""webapp.monitoring, and the app's /healthz and /metrics served beside the demo."""

import re

import httpx
import pytest
from gradio_client import Client, handle_file

from cifar_cnn.data.cifar10 import REPO_ROOT
from webapp import serving
from webapp.monitoring import Monitor

SHIP = str(REPO_ROOT / "examples" / "test0001_ship.png")


def sample(metrics: str, name: str, **labels) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search("^" + pattern + "$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def served(trained_seed_cnn):
    return serving.load_models([str(trained_seed_cnn), "/srv/private/missing_model"])


def test_observed_counts_times_and_sorts_failures_by_kind(served):
    monitor = Monitor(served)

    @monitor.observed("classify")
    def handler(image, model):
        if image == "bad":
            raise ValueError("not an image")
        if image == "bug":
            raise RuntimeError("boom")
        return "ok"

    assert handler("fine", "model") == "ok"
    with pytest.raises(ValueError):
        handler("bad", "model")
    with pytest.raises(RuntimeError):
        handler("bug", "unknown-name")
    text = monitor.metrics_text().decode()
    assert sample(text, "cifar_requests_total", endpoint="classify", model="model") == 2
    assert sample(text, "cifar_requests_total", endpoint="classify", model="all") == 1
    assert sample(text, "cifar_errors_total", endpoint="classify", kind="bad_input") == 1
    assert sample(text, "cifar_errors_total", endpoint="classify", kind="internal") == 1
    assert sample(text, "cifar_request_seconds_count", endpoint="classify") == 3
    assert sample(text, "cifar_model_load_failures") == 1
    assert sample(text, "cifar_models_loaded") == 1


def test_health_is_degraded_when_a_model_failed_and_down_when_none_serves(served):
    health = Monitor(served).health()
    assert health["status"] == "degraded"
    assert health["failures"] == {"missing_model": "ValueError"}  # no server paths
    assert health["models"]["model"]["architecture"] == "seed_cnn"
    assert len(health["models"]["model"]["weights_sha256"]) == 64
    assert Monitor(serving.ServedModels()).health()["status"] == "down"
    healthy = serving.ServedModels(classifiers=served.classifiers)
    assert Monitor(healthy).health()["status"] == "ok"


@pytest.fixture(scope="module")
def app_server(served):
    from conftest import running_app

    with running_app(served) as url:
        yield url


def test_the_app_reports_health_and_counts_requests_and_errors(app_server, tmp_path):
    health = httpx.get(f"{app_server}/healthz").json()
    assert health["status"] == "degraded" and list(health["models"]) == ["model"]

    client = Client(app_server + "/", verbose=False)
    client.predict(handle_file(SHIP), "model", 3, api_name="/classify_tab")
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(Exception, match="not an image file"):
        client.predict(handle_file(str(bad)), "model", 3, api_name="/classify_tab")

    response = httpx.get(f"{app_server}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "cifar_requests_total", endpoint="classify", model="model") == 2
    assert sample(text, "cifar_errors_total", endpoint="classify", kind="bad_input") == 1
    assert sample(text, "cifar_request_seconds_count", endpoint="classify") == 2
    assert sample(text, "cifar_model_load_failures") == 1


def test_the_mounted_app_refuses_a_server_path_named_by_a_client(app_server):
    """A client may not name a file on the server as its "upload"."""
    payload = {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}
    call = httpx.post(f"{app_server}/gradio_api/call/classify",
                      json={"data": [payload, "model", 3]})  # fmt: skip
    if call.status_code != 200:  # refused before queueing: as good, if it is a client error
        assert 400 <= call.status_code < 500
        return
    event = call.json()["event_id"]
    stream = httpx.get(f"{app_server}/gradio_api/call/classify/{event}", timeout=60).text
    assert "event: error" in stream and "event: complete" not in stream
