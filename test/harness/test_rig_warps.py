"""The bench's rig warps: the truth a case carries is the warp its thermal frame was rendered with."""

from __future__ import annotations

import cv2
import numpy as np

from psfusion_ros.harness.rig_warps import SCALE_RANGE, corner_error_px, make_case, random_rig_homography
from psfusion_ros.harness.synthetic import synthetic_frame


def test_warping_the_thermal_canvas_back_with_the_truth_restores_the_scene() -> None:
    visible = synthetic_frame(0, 192, 256).visible
    case = make_case("x", "control", visible, visible, np.random.default_rng(3))
    back = cv2.warpPerspective(case.thermal.astype(np.float32), case.homography, (256, 192))
    seen = cv2.warpPerspective(np.ones(case.thermal.shape, np.float32), case.homography, (256, 192)) > 0.99
    seen = cv2.erode(seen.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    grey = visible.astype(np.float32).mean(axis=2)
    corr = np.corrcoef(back[seen], grey[seen])[0, 1]
    assert seen.mean() > 0.2 and corr < -0.6  # the control thermal image is the inverted visible one
    wrong = np.array([[1, 0, 6.0], [0, 1, 0], [0, 0, 1]]) @ case.homography
    moved = cv2.warpPerspective(case.thermal.astype(np.float32), wrong, (256, 192))
    assert np.corrcoef(moved[seen], grey[seen])[0, 1] > corr + 0.1


def test_warps_span_the_range_and_the_error_measures_rgb_pixels() -> None:
    rng = np.random.default_rng(0)
    scales = []
    for _ in range(200):
        H, drawn = random_rig_homography(rng, (360, 480), (480, 640))
        scales.append(drawn["scale"])
        assert corner_error_px(H, H, (360, 480), (480, 640)) < 1e-9
    assert SCALE_RANGE[0] <= min(scales) < 0.7 and 1.35 < max(scales) <= SCALE_RANGE[1]
    H, _ = random_rig_homography(rng, (360, 480), (480, 640))
    shifted = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]]) @ H
    assert abs(corner_error_px(shifted, H, (360, 480), (480, 640)) - 5.0) < 1e-6
