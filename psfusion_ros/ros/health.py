"""What the node knows about its own health, ROS-free: rates, staleness, latency, errors.

The node turns :meth:`HealthMonitor.snapshot` into a diagnostic_msgs/DiagnosticStatus once a period.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR = 0, 1, 2
_WINDOW_S = 5.0


class RateMeter:
    """Events per second over the last few seconds."""

    def __init__(self, window_s: float = _WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.count = 0
        self.last: float | None = None

    def tick(self, now: float) -> None:
        self._times.append(now)
        self.count += 1
        self.last = now

    def rate(self, now: float) -> float:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


class Percentiles:
    """p50/p95 over the last ``size`` samples (bounded memory)."""

    def __init__(self, size: int = 200) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(value)

    def get(self, q: float) -> float:
        return float(np.percentile(self._values, q)) if self._values else float("nan")


@dataclass
class Snapshot:
    level: int
    message: str
    values: dict[str, str]


class HealthMonitor:
    """Collects events from callbacks and the worker (thread-safe); ``snapshot`` summarizes them."""

    def __init__(self, inputs: tuple[str, ...], stale_timeout_s: float = 1.0, expected_rate_hz: float = 0.0) -> None:
        self.inputs = inputs
        self.stale_timeout_s = stale_timeout_s
        self.expected_rate_hz = expected_rate_hz
        self._lock = threading.Lock()
        self._input_rates = {name: RateMeter() for name in inputs}
        self._output_rate = RateMeter()
        self.latency_ms = Percentiles()
        self.inference_ms = Percentiles()
        self.pipeline_ms = Percentiles()
        self.input_errors = dict.fromkeys(inputs, 0)
        self.processing_errors = 0
        self._recent: list[tuple[int, str]] = []  # (level, text) since the last snapshot
        self._started: float | None = None

    def started(self, now: float) -> None:
        self._started = now

    def input_arrived(self, name: str, now: float) -> None:
        with self._lock:
            self._input_rates[name].tick(now)

    def input_error(self, name: str, text: str) -> None:
        with self._lock:
            self.input_errors[name] += 1
            self._recent.append((WARN, f"{name}: {text}"))

    def processing_error(self, text: str, level: int = ERROR) -> None:
        with self._lock:
            self.processing_errors += 1
            self._recent.append((level, text))

    def processed(self, now: float, latency_ms: float, timing_ms: dict[str, float]) -> None:
        with self._lock:
            self._output_rate.tick(now)
            self.latency_ms.add(latency_ms)
            self.inference_ms.add(timing_ms.get("inference", float("nan")))
            self.pipeline_ms.add(sum(timing_ms.values()))

    def snapshot(self, now: float, extra: dict[str, str] | None = None) -> Snapshot:
        with self._lock:
            recent, self._recent = self._recent, []
            values: dict[str, str] = {}
            problems: list[tuple[int, str]] = []
            for name, meter in self._input_rates.items():
                values[f"{name} rate (Hz)"] = f"{meter.rate(now):.2f}"
                origin = self._started if self._started is not None else now
                since = now - (meter.last if meter.last is not None else origin)
                values[f"{name} age (s)"] = f"{since:.2f}" if meter.last is not None else "never"
                if since > self.stale_timeout_s:
                    state = f"stale for {since:.1f} s" if meter.last is not None else "no messages yet"
                    problems.append((WARN, f"{name} {state}"))
                values[f"{name} decode errors"] = str(self.input_errors[name])
            out_rate = self._output_rate.rate(now)
            values["output rate (Hz)"] = f"{out_rate:.2f}"
            values["frames published"] = str(self._output_rate.count)
            values["latency p50 (ms)"] = f"{self.latency_ms.get(50):.1f}"
            values["latency p95 (ms)"] = f"{self.latency_ms.get(95):.1f}"
            values["inference p50 (ms)"] = f"{self.inference_ms.get(50):.1f}"
            values["pipeline p50 (ms)"] = f"{self.pipeline_ms.get(50):.1f}"
            values["processing errors"] = str(self.processing_errors)
            if self.expected_rate_hz > 0 and self._output_rate.count and out_rate < 0.8 * self.expected_rate_hz:
                problems.append((WARN, f"output {out_rate:.1f} Hz below expected {self.expected_rate_hz:.1f} Hz"))
        values.update(extra or {})
        problems += recent
        if not problems:
            return Snapshot(OK, f"fusing at {out_rate:.1f} Hz", values)
        level = max(p[0] for p in problems)
        first = [text for lvl, text in problems if lvl == level][0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return Snapshot(level, first + more, values)
