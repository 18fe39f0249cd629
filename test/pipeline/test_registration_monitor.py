"""The live registration check, ROS-free: warnings when agreeing checks see a misalignment, bounded refinement."""

from __future__ import annotations

import numpy as np

from psfusion_ros.harness.rig_warps import corner_error_px
from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.registration_monitor import AGREE, MAX_STEP_PX, RegistrationMonitor, bounded_step

RGB, THERMAL = (192, 256), (144, 192)
TRUTH = misalignment_homography(RGB, THERMAL, rotation_deg=2.0, shift_px=(5.0, -3.0))


def _pair(t: int) -> tuple[np.ndarray, np.ndarray]:
    frame = synthetic_frame(t, *RGB)
    return thermal_counts(frame, THERMAL, TRUTH), frame.visible


def _calibration(shift_px: float) -> Registration:
    off = np.array([[1, 0, shift_px], [0, 1, 0], [0, 0, 1.0]]) @ TRUTH
    return Registration("homography", homography=off, calibrated_sizes=(THERMAL, RGB))


class Node:
    """What the node does with the monitor: offer each fused pair, apply refinements."""

    def __init__(self, registration: Registration, refine: str) -> None:
        self.registration = registration
        self.monitor = RegistrationMonitor(1.0, 5.0, refine, apply=self.apply, log=self.logs.append)

    logs: list[str] = []

    def apply(self, old: Registration, homography: np.ndarray, thermal_size: tuple, rgb_size: tuple) -> None:
        self.registration = Registration("homography", homography=homography, calibrated_sizes=(thermal_size, rgb_size))

    def check(self, t: int):
        self.monitor.offer(*_pair(t), self.registration)
        return self.monitor.check_now()

    def error(self) -> float:
        return corner_error_px(self.registration.homography_for(RGB, THERMAL), TRUTH, THERMAL, RGB)


def test_an_8_px_offset_warns_with_its_magnitude_after_agreeing_checks() -> None:
    node = Node(_calibration(8.0), refine="off")
    checks = [node.check(t) for t in range(AGREE)]
    assert all(abs(c.residual_px - 8.0) < 2.0 and c.confidence >= 0.5 for c in checks)
    level, text = node.monitor.condition()
    assert "misaligned by ~" in text and abs(float(text.split("~")[1].split()[0]) - 8) <= 2
    assert node.monitor.updates == 0 and node.error() > 7.5  # refine off: nothing applied
    assert node.monitor.values()["registration residual (px)"].startswith(("6", "7", "8", "9"))


def test_the_warning_needs_several_checks_and_a_good_check_clears_it() -> None:
    node = Node(_calibration(8.0), refine="off")
    node.check(0)
    assert node.monitor.condition() is None  # one check is not enough
    for t in range(1, AGREE):
        node.check(t)
    assert node.monitor.condition() is not None
    node.registration = _calibration(0.0)  # the user loads a correct calibration
    check = node.check(5)
    assert check.residual_px < 1.5 and node.monitor.condition() is None


def test_refine_auto_converges_in_bounded_steps() -> None:
    node = Node(_calibration(8.0), refine="auto")
    errors = [node.error()]
    for t in range(4 * AGREE):
        node.check(t % 6)
        errors.append(node.error())
    assert node.monitor.updates >= 2
    assert max(a - b for a, b in zip(errors, errors[1:])) <= MAX_STEP_PX + 0.5  # never a jump
    assert errors[-1] < 2.0
    assert node.monitor.condition() is None


def test_a_correct_calibration_stays_quiet() -> None:
    node = Node(_calibration(0.0), refine="auto")
    for t in range(AGREE + 1):
        assert node.check(t).residual_px < 2.0
    assert node.monitor.condition() is None and node.monitor.updates == 0


def test_bounded_step_moves_corners_at_most_the_bound() -> None:
    target = np.array([[1, 0, 20.0], [0, 1, -10.0], [0, 0, 1]]) @ TRUTH
    step = bounded_step(TRUTH, target, THERMAL, RGB, max_px=3.0)
    assert abs(corner_error_px(step, TRUTH, THERMAL, RGB) - 3.0) < 1e-4
    small = np.array([[1, 0, 1.0], [0, 1, 0], [0, 0, 1]]) @ TRUTH
    assert corner_error_px(bounded_step(TRUTH, small, THERMAL, RGB), small, THERMAL, RGB) < 1e-4


def test_camera_info_mode_and_no_pair_are_reported_not_checked() -> None:
    monitor = RegistrationMonitor(1.0, 5.0)
    assert monitor.check_now() is None and "no pair" in monitor.values()["registration check"]
    monitor.offer(*_pair(0), Registration("camera_info"))
    assert monitor.check_now() is None and "camera_info" in monitor.values()["registration check"]
