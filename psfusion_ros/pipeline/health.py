"""What the node knows about its own health, ROS-free: rates, staleness, pairing, latency, errors.

The node reports events as they happen (thread-safe) and turns :meth:`HealthMonitor.snapshot` into a
diagnostic_msgs/DiagnosticStatus once a period. Rules, so a planner never reads OK while nothing is fused:

* ERROR: both cameras deliver but no pair has been matched for ``stale_timeout`` (with the reason: how far
  apart the stamps are); inference failed; a persistent condition (an engine fallback) holds.
* WARN: a camera is stale or has never delivered; an image or camera_info was rejected; a stamp is 0 or in
  the future; the thermal input was blank after normalization and registration; the output rate is below
  80 % of ``expected_rate`` (also before the first output).
* WARN also while nothing has been fused yet, or nothing for ``stale_timeout`` plus twice the pipeline's own
  time per pair: OK means "fused recently", not "nothing wrong yet" (an idle node in its first second, or
  with a long ``stale_timeout``, is not OK).
* OK otherwise: ``fusing at N Hz``. Events are reported in the next snapshot, so a fault shows once and the
  status returns to OK when good traffic resumes.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR = 0, 1, 2
_WINDOW_S = 5.0
#: kinds of per-input problems counted separately in the diagnostics values
INPUT_PROBLEMS = ("decode errors", "camera_info errors", "stamp errors")


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
        self._last_stamp_ns: dict[str, int] = {}
        self._output_rate = RateMeter()
        self._last_match: float | None = None
        self.latency_ms = Percentiles()
        self.inference_ms = Percentiles()
        self.pipeline_ms = Percentiles()
        self.problems = {name: dict.fromkeys(INPUT_PROBLEMS, 0) for name in inputs}
        self.processing_errors = 0
        self.blank_thermal = 0
        self._recent: list[tuple[int, str]] = []  # (level, text) since the last snapshot
        self._persistent: dict[str, tuple[int, str]] = {}
        self._started: float | None = None

    def configure(self, stale_timeout_s: float, expected_rate_hz: float) -> None:
        """New thresholds (live parameter change)."""
        with self._lock:
            self.stale_timeout_s, self.expected_rate_hz = stale_timeout_s, expected_rate_hz

    def started(self, now: float) -> None:
        self._started = now

    # -- events ---------------------------------------------------------------------------------------
    def input_arrived(self, name: str, now: float, stamp_ns: int | None = None) -> None:
        with self._lock:
            self._input_rates[name].tick(now)
            if stamp_ns is not None:
                self._last_stamp_ns[name] = stamp_ns

    def input_problem(self, name: str, kind: str, text: str) -> None:
        """A rejected message: ``kind`` is one of :data:`INPUT_PROBLEMS`."""
        with self._lock:
            self.problems[name][kind] += 1
            self._recent.append((WARN, f"{name}: {text}"))

    def pair_matched(self, now: float) -> None:
        with self._lock:
            self._last_match = now

    def event(self, level: int, text: str) -> None:
        """Something worth one report (a synchronizer reset, a calibration rescaled)."""
        with self._lock:
            self._recent.append((level, text))

    def processing_error(self, text: str, level: int = ERROR) -> None:
        with self._lock:
            self.processing_errors += 1
            self._recent.append((level, text))

    def set_condition(self, key: str, level: int, text: str) -> None:
        """A state that stays in every report until cleared (an engine fallback)."""
        with self._lock:
            self._persistent[key] = (level, text)

    def clear_condition(self, key: str) -> None:
        with self._lock:
            self._persistent.pop(key, None)

    def processed(self, now: float, latency_ms: float | None, timing_ms: dict[str, float],
                  thermal_blank: bool = False) -> None:
        """One pair published; ``latency_ms`` None when the stamp cannot give a meaningful latency."""
        with self._lock:
            self._output_rate.tick(now)
            if latency_ms is not None:
                self.latency_ms.add(latency_ms)
            self.inference_ms.add(timing_ms.get("inference", float("nan")))
            self.pipeline_ms.add(sum(timing_ms.values()))
            if thermal_blank:
                self.blank_thermal += 1
                self._recent.append((WARN, "thermal input blank after normalization/registration (no contrast, "
                                           "all NaN, or the registration maps it outside the RGB frame)"))

    # -- report ---------------------------------------------------------------------------------------
    def snapshot(self, now: float, extra: dict[str, str] | None = None) -> Snapshot:
        with self._lock:
            recent, self._recent = self._recent, []
            values: dict[str, str] = {}
            problems: list[tuple[int, str]] = list(self._persistent.values())
            origin = self._started if self._started is not None else now
            fresh = []
            for name, meter in self._input_rates.items():
                values[f"{name} rate (Hz)"] = f"{meter.rate(now):.2f}"
                values[f"{name} received"] = str(meter.count)
                since = now - (meter.last if meter.last is not None else origin)
                values[f"{name} age (s)"] = f"{since:.2f}" if meter.last is not None else "never"
                if since > self.stale_timeout_s:
                    state = f"stale for {since:.1f} s" if meter.last is not None else "no messages yet"
                    problems.append((WARN, f"{name} {state}"))
                else:
                    fresh.append(name)
                for kind, count in self.problems[name].items():
                    values[f"{name} {kind}"] = str(count)
            offset_ms = self._stamp_offset_ms()
            values["stamp offset thermal-rgb (ms)"] = "n/a" if offset_ms is None else f"{offset_ms:.1f}"
            unmatched_s = now - (self._last_match if self._last_match is not None else origin)
            if len(fresh) == len(self.inputs) and unmatched_s > self.stale_timeout_s:
                why = f": stamps {abs(offset_ms) / 1e3:.3f} s apart" if offset_ms is not None else ""
                problems.append((ERROR, f"both cameras deliver but no pair matched for {unmatched_s:.1f} s{why}"))
            out_rate = self._output_rate.rate(now)
            values["output rate (Hz)"] = f"{out_rate:.2f}"
            values["frames published"] = str(self._output_rate.count)
            values["latency p50 (ms)"] = f"{self.latency_ms.get(50):.1f}"
            values["latency p95 (ms)"] = f"{self.latency_ms.get(95):.1f}"
            values["inference p50 (ms)"] = f"{self.inference_ms.get(50):.1f}"
            values["pipeline p50 (ms)"] = f"{self.pipeline_ms.get(50):.1f}"
            values["processing errors"] = str(self.processing_errors)
            values["blank thermal frames"] = str(self.blank_thermal)
            last_out = self._output_rate.last
            values["output age (s)"] = f"{now - last_out:.2f}" if last_out is not None else "never"
            running_s = now - origin
            if self.expected_rate_hz > 0 and out_rate < 0.8 * self.expected_rate_hz and (
                    self._output_rate.count or running_s > _WINDOW_S):
                problems.append((WARN, f"output {out_rate:.1f} Hz below expected {self.expected_rate_hz:.1f} Hz"))
            # OK means "fused recently", never "nothing wrong yet": a pipeline slower than the timeout gets its own
            # cadence on top of it (a CPU node fusing every 4 s is working, not stalled)
            pipeline_s = self.pipeline_ms.get(50) / 1e3
            window = self.stale_timeout_s + 2.0 * (pipeline_s if np.isfinite(pipeline_s) else 0.0)
            if last_out is None:
                problems.append((WARN, "nothing fused yet"))
            elif now - last_out > window:
                problems.append((WARN, f"nothing fused for {now - last_out:.1f} s"))
        values.update(extra or {})
        problems += recent
        if not problems:
            return Snapshot(OK, f"fusing at {out_rate:.1f} Hz", values)
        level = max(p[0] for p in problems)
        first = [text for lvl, text in problems if lvl == level][0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return Snapshot(level, first + more, values)

    def _stamp_offset_ms(self) -> float | None:
        if len(self.inputs) != 2 or any(name not in self._last_stamp_ns for name in self.inputs):
            return None
        a, b = (self._last_stamp_ns[name] for name in self.inputs)
        return (a - b) / 1e6
