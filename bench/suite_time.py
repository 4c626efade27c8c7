"""How long the test suite takes with N test processes, and how busy it keeps the CPU.

    python bench/suite_time.py                      # -n 2 against -n 3, twice each
    python bench/suite_time.py --workers 2 --rounds 1 -- -m "not slow"

Runs `python -m pytest -n N -q` (README's test command without its `lint-imports` step) for
each N in `--workers`, interleaved `--rounds` times, and prints each run's wall time, whether it
passed, and the share of the machine's CPU time that was busy (from /proc/stat, so anything else
running counts too: run it on a quiet machine). Many tests wait on subprocesses, servers and a
browser; a busy share well under 100% says another test process could use the gaps.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run_suite(workers: int, extra: list[str]) -> dict:
    busy_before, total_before = cpu_times()
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-n", str(workers), "-q", "-p", "no:cacheprovider"]
    result = subprocess.run([*command, *extra], cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    busy_after, total_after = cpu_times()
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {
        "workers": workers,
        "seconds": seconds,
        "passed": result.returncode == 0,
        "busy": (busy_after - busy_before) / max(1, total_after - total_before),
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.rounds} round(s) of -n {args.workers}", flush=True)
    runs = []
    for round_ in range(1, args.rounds + 1):
        for workers in args.workers:
            run = run_suite(workers, args.pytest_args)
            runs.append(run)
            print(
                f"round {round_}, -n {workers}: {run['seconds']:.1f} s, CPU busy "
                f"{100 * run['busy']:.0f}%, {'passed' if run['passed'] else 'FAILED'}: "
                f"{run['summary']}",
                flush=True,
            )
    print("\n| test processes | median wall time | median CPU busy | runs failed |")
    print("|---:|---:|---:|---:|")
    for workers in args.workers:
        mine = [run for run in runs if run["workers"] == workers]
        seconds = statistics.median(run["seconds"] for run in mine)
        busy = statistics.median(run["busy"] for run in mine)
        failed = sum(not run["passed"] for run in mine)
        print(f"| {workers} | {seconds:.0f} s | {100 * busy:.0f}% | {failed} of {len(mine)} |")


if __name__ == "__main__":
    main()
