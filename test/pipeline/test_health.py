"""Diagnostics content and levels: rates, staleness, pairing, stamps, blank thermal, latency, errors."""

from __future__ import annotations

from psfusion_ros.pipeline.health import ERROR, OK, WARN, HealthMonitor, RateMeter

NAMES = ("thermal", "rgb")


def test_rate_meter() -> None:
    meter = RateMeter(window_s=5.0)
    for k in range(31):
        meter.tick(100.0 + k / 10)
    assert abs(meter.rate(103.0) - 10.0) < 1e-6
    assert meter.rate(200.0) == 0.0  # everything aged out


def _feed(monitor: HealthMonitor, start: float, until: float, fused: bool = True, offset_ns: int = 1_000_000) -> None:
    t = start
    while t <= until + 1e-9:
        stamp = int(t * 1e9)
        monitor.input_arrived("thermal", t, stamp + offset_ns)
        monitor.input_arrived("rgb", t, stamp)
        if fused:
            monitor.pair_matched(t)
            monitor.processed(t, latency_ms=40.0 + t, timing_ms={"inference": 30.0, "colour": 2.0})
        t += 0.1


def test_healthy_stream_is_ok_with_figures() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 0.0, 3.0)
    snap = monitor.snapshot(3.05, {"device": "cpu"})
    assert snap.level == OK and snap.message.startswith("fusing at 10.0 Hz")
    assert snap.values["thermal rate (Hz)"] == "10.00" and snap.values["device"] == "cpu"
    assert snap.values["inference p50 (ms)"] == "30.0" and snap.values["pipeline p50 (ms)"] == "32.0"
    assert 40.0 < float(snap.values["latency p50 (ms)"]) < float(snap.values["latency p95 (ms)"])
    assert snap.values["stamp offset thermal-rgb (ms)"] == "1.0"


def test_stalled_camera_is_a_warning_naming_it() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 0.0, 2.0)
    for k in range(30):
        monitor.input_arrived("rgb", 2.0 + k / 10)
    snap = monitor.snapshot(5.0)
    assert snap.level == WARN and snap.message.startswith("thermal stale for 3.")


def test_both_cameras_delivering_without_pairs_is_an_error_with_the_reason() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 0.0, 3.0, fused=False, offset_ns=1000 * 1_000_000_000)  # thermal on another clock
    snap = monitor.snapshot(3.0)
    assert snap.level == ERROR
    assert snap.message.startswith("both cameras deliver but no pair matched for 3.0 s: stamps 1000.000 s apart")
    assert snap.values["stamp offset thermal-rgb (ms)"] == "1000000.0"
    _feed(monitor, 3.1, 4.0)  # pairs again
    assert monitor.snapshot(4.0).level == OK


def test_expected_rate_warns_also_before_the_first_output() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=10.0, expected_rate_hz=30.0)
    monitor.started(0.0)
    assert "no messages yet" not in monitor.snapshot(2.0).message  # within the stale timeout
    assert monitor.snapshot(6.0).message.startswith("output 0.0 Hz below expected 30.0 Hz")


def test_events_are_reported_once_and_errors_outrank_warnings() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=1.0, expected_rate_hz=5.0)
    monitor.started(0.0)
    assert "no messages yet" in monitor.snapshot(2.0).message
    _feed(monitor, 0.0, 3.0)
    monitor.input_problem("thermal", "decode errors", "image dropped: truncated data")
    monitor.input_problem("rgb", "camera_info errors", "camera_info rejected: no valid focal length")
    monitor.processing_error("inference failed: RuntimeError: CUDA out of memory")
    snap = monitor.snapshot(3.0)
    assert snap.level == ERROR and snap.message == "inference failed: RuntimeError: CUDA out of memory (+2 more)"
    assert snap.values["thermal decode errors"] == "1" and snap.values["rgb camera_info errors"] == "1"
    assert snap.values["rgb decode errors"] == "0" and snap.values["processing errors"] == "1"
    assert monitor.snapshot(3.0).level == OK  # reported once


def test_blank_thermal_and_stamp_problems_warn() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 0.0, 1.0)
    monitor.processed(1.0, None, {"inference": 30.0}, thermal_blank=True)
    monitor.input_problem("rgb", "stamp errors", "stamps 1000.0 s in the future (camera on another clock?)")
    snap = monitor.snapshot(1.0)
    assert snap.level == WARN and snap.message.startswith("thermal input blank")
    assert snap.values["blank thermal frames"] == "1" and snap.values["rgb stamp errors"] == "1"


def test_conditions_stay_until_cleared() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=1.0)
    monitor.started(0.0)
    _feed(monitor, 0.0, 1.0)
    monitor.set_condition("engine", ERROR, "engine fallback: running eager fp32")
    for _ in range(3):
        assert monitor.snapshot(1.0).message == "engine fallback: running eager fp32"
    monitor.clear_condition("engine")
    assert monitor.snapshot(1.0).level == OK


def test_ok_means_fused_recently_not_nothing_wrong_yet() -> None:
    monitor = HealthMonitor(NAMES, stale_timeout_s=3600.0)
    monitor.started(0.0)
    snap = monitor.snapshot(0.5)  # idle, in the first second, with a long stale timeout
    assert snap.level == WARN and snap.message == "nothing fused yet" and snap.values["frames published"] == "0"
    assert snap.values["output age (s)"] == "never"
    _feed(monitor, 0.0, 1.0)
    assert monitor.snapshot(1.05).level == OK

    slow = HealthMonitor(NAMES, stale_timeout_s=1.0)  # a CPU pipeline taking 4 s per pair
    slow.started(0.0)
    for k in range(201):  # cameras deliver at 10 Hz for 20 s; pairs wait for the worker
        t = k / 10
        slow.input_arrived("thermal", t)
        slow.input_arrived("rgb", t)
        slow.pair_matched(t)
        if k in (40, 80):  # the worker publishes at 4 s and 8 s, then hangs
            slow.processed(t, 4000.0, {"inference": 3900.0, "colour": 100.0})
        if k == 99:
            assert slow.snapshot(t).level == OK  # 1.9 s after its last output: working at its own pace
    stalled = slow.snapshot(20.0)
    assert stalled.level == WARN and stalled.message == "nothing fused for 12.0 s", stalled.message
