"""Load test of the app's /classify on 127.0.0.1: 1, 8 and 32 concurrent gradio_client clients.

    python bench/app_load.py                          # 60 s per level, the flagship
    python bench/app_load.py --seconds 20 --clients 1 8

Starts `python app.py` (the flagship only) in a child process, then for each level runs that
many threads, each with its own `gradio_client.Client`, calling /classify on a real test image
back to back for `--seconds`. Reports completed calls/s, p50/p95/p99 latency, errors (a call
that raised or returned no label), calls lost (started but neither answered nor failed), and
the server's resident memory: idle after start, after a warm-up (`--warmup-seconds` at the
highest level: TensorFlow's thread pools, traced functions and allocator arenas fill once),
after each level, and the peak. Growth is counted from the warm-up. Bounded in time and count;
nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
from app_latency import IMAGE, start_app


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemoryPeak:
    """The highest resident memory of a process, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.value = resident_mb(pid)
        self._done = threading.Event()

        def sample():
            while not self._done.wait(interval):
                self.value = max(self.value, resident_mb(pid))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_level(url: str, model: str, clients: int, seconds: float) -> dict:
    from gradio_client import Client, handle_file

    connections = [Client(url, verbose=False) for _ in range(clients)]
    latencies: list[float] = []
    errors = started = 0
    problems: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def work(client):
        nonlocal errors, started
        while time.perf_counter() < stop:
            with lock:
                started += 1
            began = time.perf_counter()
            problem = None
            try:
                answer = client.predict(handle_file(str(IMAGE)), model, 3, api_name="/classify")
                if not answer.get("label"):
                    problem = f"no label in {answer!r}"
            except Exception as error:  # counted and shown, not fatal to the load test
                problem = repr(error)
            with lock:
                if problem is None:
                    latencies.append(1000 * (time.perf_counter() - began))
                else:
                    errors += 1
                    problems.setdefault(problem[:200], 0)
                    problems[problem[:200]] += 1

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in connections]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:  # a call still unanswered a minute after the level ends is lost
        thread.join(timeout=max(0, stop + 60 - time.perf_counter()))
    elapsed = time.perf_counter() - began
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if latencies else (np.nan,) * 3
    with lock:
        lost = started - len(latencies) - errors
    return {"calls": len(latencies), "per_second": len(latencies) / elapsed, "p50": p50,
            "p95": p95, "p99": p99, "errors": errors, "lost": lost,
            "problems": problems}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/resnet_fast")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup-seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=7872)
    args = parser.parse_args()
    app = start_app(args.model, args.port)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        idle = resident_mb(app.pid)
        run_level(url, Path(args.model).name, max(args.clients), args.warmup_seconds)
        warm = resident_mb(app.pid)
        peak = MemoryPeak(app.pid)
        print("| clients | calls | calls/s | p50 ms | p95 ms | p99 ms | errors | lost | RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for clients in args.clients:
            r = run_level(url, Path(args.model).name, clients, args.seconds)
            print(
                f"| {clients} | {r['calls']} | {r['per_second']:.1f} | {r['p50']:.0f} "
                f"| {r['p95']:.0f} | {r['p99']:.0f} | {r['errors']} | {r['lost']} "
                f"| {resident_mb(app.pid):.0f} |",
                flush=True,
            )
            for problem, count in r["problems"].items():
                print(f"  {count} x {problem}")
        after = resident_mb(app.pid)
        peak.stop()
        print(f"\nServer resident memory: {idle:.0f} MB idle, {warm:.0f} MB after "
              f"{args.warmup_seconds:.0f} s warm-up, {after:.0f} MB after the run "
              f"({after - warm:+.0f} MB since warm-up), peak {peak.value:.0f} MB")  # fmt: skip
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()
