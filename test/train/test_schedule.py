"""The reference's schedule: geometric warm-up from 1e-5, then poly 0.9 down to zero."""

from __future__ import annotations

import math

import pytest

from psfusion_ros.train.schedule import WarmupPoly


def test_warm_up_is_geometric_from_the_start_lr_to_the_lr() -> None:
    s = WarmupPoly(lr=1e-3, max_iter=10_000, warmup_steps=1000, start_lr=1e-5)
    assert s(0) == pytest.approx(1e-5)
    assert s(500) == pytest.approx(math.sqrt(1e-5 * 1e-3))  # halfway in steps is halfway in log(lr)
    assert s(1000) == pytest.approx(1e-3)
    assert all(s(i) < s(i + 1) for i in range(0, 1000, 50))


def test_poly_decay_after_the_warm_up() -> None:
    s = WarmupPoly(lr=1e-3, max_iter=10_000, warmup_steps=1000)
    assert s(1001) == pytest.approx(1e-3 * (1 - 1 / 9000) ** 0.9)
    assert s(5500) == pytest.approx(1e-3 * 0.5 ** 0.9)
    assert s(10_000) == 0.0
    assert s(12_000) == 0.0  # never negative when resumed with fewer epochs


def test_no_warm_up_starts_at_the_lr() -> None:
    s = WarmupPoly(lr=0.01, max_iter=30, warmup_steps=0)
    assert s(0) == 0.01
    assert s(15) == pytest.approx(0.01 * 0.5 ** 0.9)
