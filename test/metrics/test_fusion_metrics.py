"""Fusion metrics: hand-computed cases, invariants, the reference Evaluator's numbers, profile quirks."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from helpers import DATA_DIR
from psfusion_ros import fusion_metrics
from psfusion_ros.errors import ConfigError, FrameError
from psfusion_ros.metrics import METRIC_NAMES


def _texture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(cv2.GaussianBlur(rng.random((h, w)) * 255, (0, 0), 1.0)).astype(np.float32)


def _read_grey(path) -> np.ndarray:  # how CDDFuse's image_read_cv2(..., 'GRAY') reads
    return np.round(cv2.cvtColor(cv2.imread(str(path)).astype(np.float32), cv2.COLOR_BGR2GRAY))


def test_equals_the_cddfuse_evaluator_on_its_golden_numbers() -> None:
    golden = json.loads((DATA_DIR / "cddfuse_evaluator_metrics.json").read_text())["metrics"]
    for name, expected in golden.items():
        ours = fusion_metrics(_read_grey(DATA_DIR / "fuse" / "reference_fused" / name),
                              _read_grey(DATA_DIR / "fuse" / "ir" / name), _read_grey(DATA_DIR / "fuse" / "vi" / name))
        assert set(ours) == set(METRIC_NAMES)
        for metric, value in expected.items():
            assert abs(ours[metric] - value) <= 1e-6 * abs(value), (name, metric, ours[metric], value)


def test_hand_computed_single_image_metrics() -> None:
    ramp = np.tile(np.arange(64, dtype=np.float32), (48, 1))  # +1 per column
    m = fusion_metrics(ramp, ramp, ramp)
    assert m["SF"] == pytest.approx(1.0)  # rows differ by 0, columns by 1
    assert m["AG"] == pytest.approx(math.sqrt(0.5))  # gx = 1, gy = 0
    assert m["EN"] == pytest.approx(6.0)  # 64 equally frequent grey levels
    assert m["SD"] == pytest.approx(np.std(np.arange(64)), rel=1e-6)
    half = np.zeros((48, 48), np.float32)
    half[:, 24:] = 255
    assert fusion_metrics(half, half, half)["EN"] == pytest.approx(1.0)


def test_hand_computed_reference_metrics() -> None:
    f, a, b = (np.full((48, 48), v, np.float32) for v in (2.0, 1.0, 3.0))
    m = fusion_metrics(f, a, b)
    assert m["MSE"] == pytest.approx(1.0)  # ((2-1)² + (2-3)²) / 2
    assert m["PSNR"] == pytest.approx(10 * math.log10(4.0))  # max(F)² / MSE
    a = _texture()
    m = fusion_metrics(a, a, 255 - a)
    assert m["CC"] == pytest.approx(0.0, abs=1e-6)  # +1 with A, -1 with the negative
    assert m["MI"] == pytest.approx(2 * fusion_metrics(a, a, a)["MI"] / 2, rel=1e-9)  # bijection keeps MI
    same = fusion_metrics(a, a, a)
    assert same["SSIM"] == pytest.approx(2.0) and same["VIF"] == pytest.approx(2.0)
    levels = np.array([0, 255] * (48 * 24), np.float32).reshape(48, 48)
    assert fusion_metrics(levels, levels, np.zeros((48, 48), np.float32))["MI"] == pytest.approx(math.log(2))


def test_qabf_of_identical_textured_images_is_the_sigmoid_product() -> None:
    a = _texture(seed=3) * 4  # strong edges: the strength sigmoid is saturated
    q = fusion_metrics(a, a, a)["Qabf"]
    # G = gF where gA == gF (as written in the reference), A = 1: Tg/(1+e^(-15(gF-0.5))) · Ta/(1+e^(-22·0.2))
    assert q == pytest.approx(0.9994 * 0.9879 / (1 + math.exp(-4.4)), rel=1e-3)


def test_invariants() -> None:
    a, b = _texture(seed=1), _texture(seed=2)
    f = (a + b) / 2
    m = fusion_metrics(f, a, b)
    assert all(np.isfinite(v) for v in m.values())
    assert m["VIF"] > 0 and 0 < m["Qabf"] < 1 and 0 < m["SSIM"] < 2 and -1 <= m["CC"] <= 1
    swapped = fusion_metrics(f, b, a)
    for name in ("MI", "MSE", "CC", "VIF", "Qabf", "SSIM"):  # symmetric in the two sources
        assert swapped[name] == pytest.approx(m[name], rel=1e-9)
    worse = fusion_metrics(np.roll(f, 7, axis=1), a, b)
    assert worse["SSIM"] < m["SSIM"] and worse["VIF"] < m["VIF"] and worse["MSE"] > m["MSE"]


def test_bad_inputs() -> None:
    good = _texture()
    with pytest.raises(FrameError, match="one shape"):
        fusion_metrics(good, good[:, :-1], good)
    with pytest.raises(FrameError, match="NaN or Inf"):
        bad = good.copy()
        bad[0, 0] = np.nan
        fusion_metrics(bad, good, good)
    with pytest.raises(ConfigError, match="unknown metrics profile 'matlab'; profiles: cddfuse, tang2022, tang2023"):
        fusion_metrics(good, good, good, "matlab")
    with pytest.raises(FrameError, match="at least 47x47"):
        fusion_metrics(good[:20], good[:20], good[:20])
