"""Diagnostics content: rates, staleness, latency percentiles, error levels."""

from __future__ import annotations

from psfusion_ros.ros.health import ERROR, OK, WARN, HealthMonitor, RateMeter


def test_rate_meter() -> None:
    meter = RateMeter(window_s=5.0)
    for k in range(31):
        meter.tick(100.0 + k / 10)
    assert abs(meter.rate(103.0) - 10.0) < 1e-6
    assert meter.rate(200.0) == 0.0  # everything aged out


def _feed(monitor: HealthMonitor, until: float) -> None:
    t = 0.0
    while t <= until:
        monitor.input_arrived("thermal", t)
        monitor.input_arrived("rgb", t)
        monitor.processed(t, latency_ms=40.0 + t, timing_ms={"inference": 30.0, "colour": 2.0})
        t += 0.1


def test_healthy_stream_is_ok_with_figures() -> None:
    monitor = HealthMonitor(("thermal", "rgb"), stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 3.0)
    snap = monitor.snapshot(3.05, {"device": "cpu"})
    assert snap.level == OK and snap.message.startswith("fusing at 10.0 Hz")
    assert snap.values["thermal rate (Hz)"] == "10.00" and snap.values["device"] == "cpu"
    assert snap.values["inference p50 (ms)"] == "30.0" and snap.values["pipeline p50 (ms)"] == "32.0"
    assert 40.0 < float(snap.values["latency p50 (ms)"]) < float(snap.values["latency p95 (ms)"])


def test_stalled_camera_is_a_warning_naming_it() -> None:
    monitor = HealthMonitor(("thermal", "rgb"), stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 2.0)
    for k in range(30):
        monitor.input_arrived("rgb", 2.0 + k / 10)
    snap = monitor.snapshot(5.0)
    assert snap.level == WARN and snap.message.startswith("thermal stale for 3.")


def test_never_seen_input_and_errors() -> None:
    monitor = HealthMonitor(("thermal", "rgb"), stale_timeout_s=1.0, expected_rate_hz=30.0)
    monitor.started(0.0)
    assert "no messages yet" in monitor.snapshot(2.0).message
    _feed(monitor, 3.0)
    assert "below expected 30.0 Hz" in monitor.snapshot(3.0).message
    monitor.processing_error("inference failed: RuntimeError: CUDA out of memory")
    snap = monitor.snapshot(3.0)
    assert snap.level == ERROR and snap.message.startswith("inference failed") and "(+1 more)" in snap.message
    assert monitor.snapshot(3.0).level == WARN  # errors are reported once, the rate warning persists
