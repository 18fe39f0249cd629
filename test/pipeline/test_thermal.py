"""Raw thermal normalization: counts, temperatures, modes, smoothing, NaN/Inf."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.config import ThermalConfig
from psfusion_ros.pipeline.thermal import ThermalNormalizer


def _ramp(lo: float, hi: float, dtype: type) -> np.ndarray:
    return np.linspace(lo, hi, 100 * 120).reshape(100, 120).astype(dtype)


def test_mono16_counts_use_the_occupied_range_not_the_type_range() -> None:
    counts = _ramp(21_000, 23_000, np.uint16)  # a 14-bit camera's typical sliver of 0..65535
    out = ThermalNormalizer(ThermalConfig(smoothing=0.0))(counts)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert 0.45 < out.mean() < 0.55  # not near-black, as counts / 65535 would be (~0.34 flat)


def test_percentile_ignores_hot_outliers_and_minmax_does_not() -> None:
    frame = _ramp(20.0, 30.0, np.float32)
    frame[0, :5] = 500.0  # a few saturated pixels (sun, exhaust)
    pct = ThermalNormalizer(ThermalConfig("percentile", smoothing=0.0))(frame)
    mm = ThermalNormalizer(ThermalConfig("minmax", smoothing=0.0))(frame)
    assert pct[50].mean() > 0.4 and mm[50].mean() < 0.05


def test_fixed_range_and_inversion() -> None:
    frame = np.array([[10.0, 20.0, 30.0, 40.0]], np.float32)
    out = ThermalNormalizer(ThermalConfig("fixed", fixed_min=20.0, fixed_max=40.0))(frame)
    assert out.tolist() == [[0.0, 0.0, 0.5, 1.0]]
    inv = ThermalNormalizer(ThermalConfig("fixed", fixed_min=20.0, fixed_max=40.0, invert=True))(frame)
    assert inv.tolist() == [[1.0, 1.0, 0.5, 0.0]]


def test_nan_and_inf_are_ignored_for_the_range_and_read_as_zero() -> None:
    frame = _ramp(0.0, 10.0, np.float32)
    frame[10:20, 10:20] = np.nan
    frame[30, 30] = np.inf
    frame[31, 31] = -np.inf
    plain = ThermalNormalizer(ThermalConfig(smoothing=0.0))(frame)
    inverted = ThermalNormalizer(ThermalConfig(smoothing=0.0, invert=True))(frame)
    finite = np.isfinite(frame)
    for out in (plain, inverted):
        assert np.isfinite(out).all() and out[15, 15] == 0.0 and out[30, 30] == 0.0 and out[31, 31] == 0.0
    assert np.allclose(inverted[finite], 1.0 - plain[finite])
    assert 0.4 < plain[50:].mean() < 1.0
    all_nan = np.full((8, 8), np.nan, np.float32)
    assert (ThermalNormalizer()(all_nan) == 0).all()


def test_smoothing_damps_brightness_flicker() -> None:
    base = _ramp(20_000, 22_000, np.uint16)
    hot = base.copy()
    hot[:30] = 30_000  # a hot object enters for one frame
    smooth = ThermalNormalizer(ThermalConfig(smoothing=0.8))
    jumpy = ThermalNormalizer(ThermalConfig(smoothing=0.0))
    for n in (smooth, jumpy):
        n(base)
    change_smooth = abs(smooth(hot)[60:].mean() - smooth(base)[60:].mean())
    jumpy_hot = jumpy(hot)[60:].mean()
    change_jumpy = abs(jumpy_hot - jumpy(base)[60:].mean())
    assert change_smooth < 0.5 * change_jumpy
    smooth.reset()
    assert smooth.current_range is None


def test_mono8_passes_through_unless_asked() -> None:
    frame = np.array([[0, 51, 255]], np.uint8)
    out = ThermalNormalizer()(frame)
    assert out.dtype == np.uint8 and np.array_equal(out, frame)  # exact: the paper's 8-bit path
    inverted = ThermalNormalizer(ThermalConfig(invert=True))(frame)
    assert inverted.dtype == np.uint8 and inverted.tolist() == [[255, 204, 0]]
    stretched = ThermalNormalizer(ThermalConfig("minmax", normalize_8bit=True, smoothing=0.0))(
        np.array([[100, 150, 200]], np.uint8))
    assert np.allclose(stretched, [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mode": "gamma"}, "thermal.mode='gamma' must be one of none"),
     ({"low_percentile": 99, "high_percentile": 1}, "must be below thermal.high_percentile"),
     ({"smoothing": 1.0}, "thermal.smoothing=1.0 is out of range"),
     ({"mode": "fixed", "fixed_min": 5, "fixed_max": 5}, "fixed_max \\(5\\) must be above"),
     ({"invert": 1}, "thermal.invert must be true or false")],
)
def test_invalid_configurations_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        ThermalConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_tensor_frames_normalize_like_arrays() -> None:
    counts = _ramp(21_000, 23_000, np.uint16)
    counts[0, :3] = 40_000
    floats = _ramp(-5.0, 40.0, np.float32)
    floats[5, 5] = np.nan
    for frame in (counts, floats):
        for mode in ("percentile", "minmax"):
            cfg = ThermalConfig(mode, smoothing=0.0, invert=True)
            array = ThermalNormalizer(cfg)(frame)
            tensor = ThermalNormalizer(cfg)(torch.from_numpy(frame))
            assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
            assert np.abs(tensor.numpy() - array).max() < 2e-3  # quantile interpolation differs slightly
