"""psfusion_lifecycle_node through real lifecycle_msgs service calls: configure → activate → deactivate → activate →
cleanup → shutdown, outputs only while active, memory released on cleanup, a broken checkpoint is a FAILURE with
its reason (the node stays up and reports it). Real processes, bounded event-driven waits."""

from __future__ import annotations

from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image
from test_node import _node_args, _pairs

from ros_harness import PARAMS_FILE, Feeder, Harness, NodeProcess

NODE = "/psfusion"


def _state(h: Harness) -> str:
    return h.call(GetState, f"{NODE}/get_state", GetState.Request()).current_state.label


def _change(h: Harness, transition: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition))
    return h.call(ChangeState, f"{NODE}/change_state", request, timeout=120.0).success


def _managed(tmp_path: Path, **overrides: object) -> NodeProcess:
    return NodeProcess(overrides, tmp_path / "managed.log", PARAMS_FILE, executable="psfusion_lifecycle_node")


def _diagnostic(h: Harness) -> tuple[int, str, dict[str, str]] | None:
    for arr in reversed(h.received.get("/diagnostics", [])):
        for s in arr.status:
            if s.name == "psfusion: fusion":
                return s.level[0] if isinstance(s.level, bytes) else int(s.level), s.message, \
                    {kv.key: kv.value for kv in s.values}
    return None


def test_transitions_through_the_services(tmp_path: Path, official_checkpoint: Path) -> None:
    node = _managed(tmp_path, **_node_args(official_checkpoint))
    h = Harness()
    try:
        fused = h.record(Image, "fused/image")
        h.record(DiagnosticArray, "/diagnostics")
        assert _state(h) == "unconfigured", node.output()
        assert h.spin_until(lambda: (d := _diagnostic(h)) is not None and "unconfigured" in d[1], 30)
        rss_unconfigured = node.rss_mb()

        assert _change(h, Transition.TRANSITION_CONFIGURE), node.output()
        assert _state(h) == "inactive"
        assert h.pub_rgb.get_subscription_count() == 0  # inactive: no inputs yet
        rss_configured = node.rss_mb()

        for round_ in range(2):  # activate, deactivate, activate again: fusing resumes on the warm engine
            assert _change(h, Transition.TRANSITION_ACTIVATE), node.output()
            assert _state(h) == "active"
            assert h.wait_for_node(), node.output()
            before = len(fused)
            assert Feeder(h, fused, _pairs(h)).until(lambda before=before: len(fused) >= before + 2), node.output()
            if round_ == 1:
                break
            assert _change(h, Transition.TRANSITION_DEACTIVATE), node.output()
            assert _state(h) == "inactive"
            # inputs closed: the node's subscriptions are gone (the event, not an absence of output, is awaited)
            assert h.spin_until(lambda: h.pub_rgb.get_subscription_count() == 0
                                and h.pub_thermal.get_subscription_count() == 0, 30), node.output()
            assert h.spin_until(lambda: (d := _diagnostic(h)) is not None and "inactive" in d[1], 30)

        assert _change(h, Transition.TRANSITION_DEACTIVATE)
        rss_active = node.rss_mb()
        assert _change(h, Transition.TRANSITION_CLEANUP), node.output()
        assert _state(h) == "unconfigured"
        rss_clean = node.rss_mb()
        print(f"RSS MB: unconfigured {rss_unconfigured:.0f}, configured {rss_configured:.0f}, "
              f"after fusing {rss_active:.0f}, after cleanup {rss_clean:.0f}")
        # the engine's memory is given back (torch's own libraries stay loaded)
        assert rss_clean < rss_active - 0.5 * (rss_configured - rss_unconfigured), node.output()
        assert "engine released" in node.output()

        assert _change(h, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN), node.output()
    finally:
        h.close()
    assert node.proc.wait(timeout=60) == 0, node.output()
    assert "Traceback" not in node.output()


def test_a_broken_checkpoint_fails_configure_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "best_model.pth"
    broken.write_bytes(b"PK\x03\x04 not a checkpoint")
    node = _managed(tmp_path, checkpoint=str(broken), device="cpu", network_height=64, network_width=96,
                    **{"diagnostics.period": 0.3})
    h = Harness()
    try:
        h.record(DiagnosticArray, "/diagnostics")
        assert _state(h) == "unconfigured", node.output()
        assert not _change(h, Transition.TRANSITION_CONFIGURE)
        assert _state(h) == "unconfigured"
        assert h.spin_until(lambda: (d := _diagnostic(h)) is not None and "configure failed" in d[1], 30)
        level, message, _ = _diagnostic(h)
        assert level == 2 and str(broken) in message, message
        assert node.wait_for_output("configure failed"), node.output()
        assert node.proc.poll() is None  # still up, can be configured again once the file is fixed
    finally:
        h.close()
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_in_any_state_exits_cleanly(tmp_path: Path, official_checkpoint: Path, sig: str) -> None:
    import signal

    node = _managed(tmp_path, **_node_args(official_checkpoint))
    h = Harness()
    try:
        assert _state(h) == "unconfigured", node.output()
        assert _change(h, Transition.TRANSITION_CONFIGURE) and _change(h, Transition.TRANSITION_ACTIVATE)
    finally:
        h.close()
    assert node.interrupt(sig=getattr(signal, sig)) == 0, node.output()
    assert "Traceback" not in node.output()
