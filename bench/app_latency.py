"""Latency and throughput of the app's /classify and /gradcam endpoints, two ways.

    python bench/app_latency.py                       # the flagship, 100 calls per setting
    python bench/app_latency.py --repeats 200 --clients 8 --model models/resnet_fast

Starts `python app.py` on 127.0.0.1 in a child process (the shipped flagship only), then times:

- raw HTTP: what a browser or any HTTP client does: upload the image (POST /gradio_api/upload),
  call the endpoint (POST /gradio_api/call/<name>) and read the result stream (GET .../<event>);
- gradio_client: `Client.predict(handle_file(...), api_name=...)`, which adds its own per-call
  work (a job thread, status polling, downloading the output files).

Each setting reports the median and 95th percentile over `--repeats` sequential calls after a
warm-up call, then the throughput of `--clients` concurrent clients (threads, one client each)
making `--repeats` calls in all. Everything runs on the same machine, so concurrent clients
compete with the server for its cores: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "examples" / "test0001_ship.png"


class RawClient:
    """Gradio's HTTP API without gradio_client: upload, call, read the event stream."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=60)

    def upload(self, path: Path) -> dict:
        with open(path, "rb") as file:
            response = self.http.post(
                f"{self.url}/gradio_api/upload", files={"files": (path.name, file, "image/png")}
            )
        response.raise_for_status()
        server_path = response.json()[0]
        return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, endpoint: str, data: list) -> list:
        response = self.http.post(f"{self.url}/gradio_api/call/{endpoint}", json={"data": data})
        response.raise_for_status()
        event_id = response.json()["event_id"]
        event = None
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{endpoint}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line.split(":", 1)[1])
                    if event == "error":
                        raise RuntimeError(f"{endpoint} failed: {payload}")
                    return payload
        raise RuntimeError(f"{endpoint}: the stream ended without a result")


def arguments(endpoint: str, image, model: str) -> list:
    if endpoint == "classify":
        return [image, model, 3]
    return [image, model, "predicted", "", "gradcam", 0.5, "jet"]


def start_app(model: str, port: int) -> subprocess.Popen:
    app = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--models", model, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2).is_success:
                return app
        except httpx.HTTPError:
            pass
        if app.poll() is not None:
            raise RuntimeError("app.py exited before serving")
        time.sleep(1)
    app.kill()
    raise RuntimeError("app.py did not start within 180 s")


def sequential(call, repeats: int) -> tuple[float, float]:
    call()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(1000 * (time.perf_counter() - started))
    return float(np.median(samples)), float(np.percentile(samples, 95))


def concurrent(make_call, clients: int, total: int) -> tuple[float, int]:
    """Requests/s of `clients` threads making `total` calls in all; and the number of errors."""
    calls = [make_call() for _ in range(clients)]
    for call in calls:
        call()  # each client's warm-up
    errors = []
    per_client = total // clients

    def run(call):
        for _ in range(per_client):
            try:
                call()
            except Exception as error:  # counted and reported, not fatal to the benchmark
                errors.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_client * clients / (time.perf_counter() - started), len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/resnet_fast")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    url = f"http://127.0.0.1:{args.port}/"
    name = Path(args.model).name
    app = start_app(args.model, args.port)
    try:
        print(
            f"| endpoint | client | median ms | p95 ms | {args.clients} clients, calls/s | errors |"
        )
        print("|---|---|---:|---:|---:|---:|")
        for endpoint in ("classify", "gradcam"):

            def raw_call(endpoint=endpoint):
                client = RawClient(url)
                return lambda: client.call(
                    endpoint, arguments(endpoint, client.upload(IMAGE), name)
                )

            def gradio_call(endpoint=endpoint):
                client = Client(url, verbose=False)
                return lambda: client.predict(
                    *arguments(endpoint, handle_file(str(IMAGE)), name), api_name=f"/{endpoint}"
                )

            for label, make_call in (("raw HTTP", raw_call), ("gradio_client", gradio_call)):
                median, p95 = sequential(make_call(), args.repeats)
                throughput, errors = concurrent(make_call, args.clients, args.repeats)
                print(
                    f"| /{endpoint} | {label} | {median:.1f} | {p95:.1f} | {throughput:.1f} "
                    f"| {errors} |",
                    flush=True,
                )
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()
