"""The node watches its registration while it fuses: real node processes, a drive from a misaligned rig.

A calibration 8 px off gives the misalignment WARN with its magnitude; ``registration.refine: auto`` (set live
through the SetParameters service) brings the residual below 2 px and clears it; the right calibration stays OK.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from ros_harness import Feeder, Harness

RGB, THERMAL = (192, 256), (144, 192)
TRUTH = misalignment_homography(RGB, THERMAL, rotation_deg=2.0, shift_px=(5.0, -3.0))
EPOCH_NS = 1_700_000_000_000_000_000
FRAMES = [synthetic_frame(t, *RGB) for t in range(6)]
THERMALS = [thermal_counts(f, THERMAL, TRUTH) for f in FRAMES]


def _node(start_node, homography: np.ndarray, **extra: object):
    return start_node(**{"allow_untrained": True, "network_height": 64, "network_width": 96,
                         "registration.mode": "homography",
                         "registration.homography": [float(v) for v in homography.ravel()],
                         "registration.check_period": 0.5, "registration.warn_px": 4.0, "diagnostics.period": 0.5,
                         **extra})


def _feeder(h: Harness, fused: list) -> Feeder:
    def pair(i: int) -> tuple[Image, Image]:
        stamp = EPOCH_NS + i * 100_000_000
        k = i % len(FRAMES)
        return h.image(THERMALS[k], "mono16", stamp, "thermal"), h.image(FRAMES[k].visible, "rgb8", stamp, "rgb")

    return Feeder(h, fused, pair)


def _statuses(diagnostics: list, start: int = 0) -> list:
    return [s for a in diagnostics[start:] for s in a.status if s.name == "psfusion: fusion"]


def _value(status, key: str) -> str:
    return next((v.value for v in status.values if v.key == key), "")


def _residual(status) -> float:
    text = _value(status, "registration residual (px)")
    return float(text) if text not in ("", "n/a") else float("nan")


def test_a_calibration_8_px_off_is_reported_and_refined_live(start_node, harness: Harness) -> None:
    fused = harness.record(Image, "fused/image")
    diagnostics = harness.record(DiagnosticArray, "/diagnostics", depth=200)
    off = np.array([[1, 0, 8.0], [0, 1, 0], [0, 0, 1]]) @ TRUTH
    node = _node(start_node, off)
    assert harness.wait_for_node(120), node.output()
    feeder = _feeder(harness, fused)

    def warned() -> bool:
        return any("misaligned by ~" in s.message for s in _statuses(diagnostics))

    assert feeder.until(warned, timeout=180, patience=0.3), [s.message for s in _statuses(diagnostics)][-5:]
    status = next(s for s in _statuses(diagnostics) if "misaligned by ~" in s.message)
    assert status.level == bytes([1])
    magnitude = float(status.message.split("~")[1].split()[0])
    assert abs(magnitude - 8) <= 2, status.message
    assert "psfusion-calibrate --auto" in status.message

    result = harness.set_parameter("psfusion", "registration.refine", "auto")
    assert result.successful, result.reason
    mark = len(diagnostics)

    def refined() -> bool:
        recent = _statuses(diagnostics, mark)
        return bool(recent) and _residual(recent[-1]) < 2.0 and "misaligned" not in recent[-1].message and int(
            _value(recent[-1], "registration updates") or 0) >= 1

    assert feeder.until(refined, timeout=240, patience=0.3), \
        [(s.message, _residual(s)) for s in _statuses(diagnostics, mark)][-5:]
    assert "registration refined from the images" in node.output()
    assert node.proc.poll() is None


def test_the_right_calibration_stays_ok(start_node, harness: Harness) -> None:
    fused = harness.record(Image, "fused/image")
    diagnostics = harness.record(DiagnosticArray, "/diagnostics", depth=200)
    node = _node(start_node, TRUTH, **{"registration.refine": "auto"})
    assert harness.wait_for_node(120), node.output()
    feeder = _feeder(harness, fused)

    def checked() -> bool:
        recent = _statuses(diagnostics)
        return bool(recent) and int(_value(recent[-1], "registration checks") or 0) >= 4 and recent[-1].level == b"\x00"

    assert feeder.until(checked, timeout=180, patience=0.3), [s.message for s in _statuses(diagnostics)][-5:]
    last = _statuses(diagnostics)[-1]
    assert _residual(last) < 2.0 and float(_value(last, "registration confidence")) >= 0.5
    assert not any("misaligned" in s.message for s in _statuses(diagnostics))
    assert _value(last, "registration updates") == "0"
