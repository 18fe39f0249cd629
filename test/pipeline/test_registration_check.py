"""The live registration check on recorded infrared: a right calibration stays put, a bumped one is measured.

Synthetic drives cannot show this: their "thermal" frames share every edge with the RGB frame. On recorded pairs
the check once started at the 1/4 level and walked a right calibration 17-88 px away with full confidence.
The right calibration is the estimator's own result on the pair (what ``psfusion-calibrate --auto`` writes).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SHARED_PAIRS, recorded_pair
from psfusion_ros.pipeline.auto_registration import displacement_px, estimate_registration
from psfusion_ros.pipeline.registration_check import measure


@pytest.mark.skipif(not SHARED_PAIRS.is_dir(), reason="../shared sample pairs not present")
@pytest.mark.parametrize("pair", ["tno/04.png", "tno/05.png", "roadscene/FLIR_05955.jpg"])
def test_a_right_calibration_stays_put_and_a_bumped_one_is_measured(pair: str) -> None:
    ir, vi = recorded_pair(pair)
    own = estimate_registration(ir, vi)
    right = measure(own.homography, ir, vi)
    assert right.residual_px < 3.0, f"{pair}: a right calibration reported {right.residual_px:.1f} px off"
    bumped = np.array([[1, 0, 6.4], [0, 1, -4.8], [0, 0, 1]]) @ own.homography  # the mount moved 8 px
    check = measure(bumped, ir, vi)
    assert check.confident, check.reason
    assert abs(check.residual_px - 8.0) <= 2.0, f"{pair}: an 8 px bump measured as {check.residual_px:.1f} px"
    assert displacement_px(own.homography, check.refined, ir.shape, vi.shape[:2]) < 2.5
