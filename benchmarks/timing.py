"""How the speed benchmarks measure and print: timed runs, their summaries, tables, the machine."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MIN_RUNS = 3


class TooFewRuns(ValueError):
    """A figure was asked for from fewer than MIN_RUNS timed runs."""


def check_repeats(repeats: int) -> None:
    """Refuse, with a clear message, to measure anything with fewer than MIN_RUNS timed runs."""
    if repeats < MIN_RUNS:
        raise TooFewRuns(f"refusing to report a figure from {repeats} timed run(s): every figure is the "
                         f"min/median/max of at least {MIN_RUNS} runs")


def summarize(samples, unit: str) -> dict:
    """min / median / max (and every sample) of at least MIN_RUNS measurements; TooFewRuns otherwise."""
    samples = [float(s) for s in samples]
    check_repeats(len(samples))
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples),
            "runs": len(samples), "unit": unit, "samples": samples}


def wall_seconds(fn) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed(fn, repeats: int) -> dict:
    """Seconds per call of ``fn`` over ``repeats`` timed calls, as dict(min, median, max); refuses < 3."""
    check_repeats(repeats)
    return summarize([wall_seconds(fn) for _ in range(repeats)], "s")


def round_robin(fns: dict, repeats: int, measure=wall_seconds) -> dict:
    """``measure(fn)`` of every fn, ``repeats`` rounds of one run each: {name: [one value per round]}.

    Interleaving spreads any drift of the machine's load over all contenders instead of one.
    """
    check_repeats(repeats)
    values = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            values[name].append(measure(fn))
    return values


def rate(seconds: list, work: float, unit: str) -> dict:
    """``work`` per second for each timed run, summarized."""
    return summarize([work / s for s in seconds], unit)


def paired_ratio(a: dict, b: dict) -> dict:
    """a / b per round of a round-robin (the samples of two summaries, in order), summarized."""
    return summarize([x / y for x, y in zip(a["samples"], b["samples"])], "x")


def median_latency_ms(fn, calls: int) -> float:
    """Median wall-clock milliseconds of ``calls`` single calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


# ---------------------------------------------------------------- formatting


def fmt(stat: dict | None, digits: int = 0, scale: float = 1.0) -> str:
    """'median (min-max)' of a summary."""
    if stat is None:
        return "n/a"
    m, lo, hi = (stat[k] * scale for k in ("median", "min", "max"))
    return f"{m:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: VmHWM from /proc/self/status, else getrusage's ru_maxrss.

    On Linux ru_maxrss survives fork + exec: a child started by this (large) benchmark process would
    report this process's peak, not its own, while VmHWM belongs to the child's fresh address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux (bytes on macOS)


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    """CPU, cores, memory, load, library versions, date and commit: what the figures depend on."""
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = None
    try:
        memory = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "memory_mib": memory,
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": {name: version(name) for name in
                         ("tensorflow", "keras", "keras_ae", "numpy", "torch", "ai-edge-litert")},
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "commit": commit,
            "load_average_start": os.getloadavg()}


def jsonable(value):
    """Dict keys as strings, tuples as lists, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
