"""ApproximateTimeSync against ground truth: jitter, drops, rate mismatch, reordering, bag loops."""

from __future__ import annotations

import numpy as np
import pytest

from psfusion_ros import ApproximateTimeSync

MS = 1_000_000
S = 1_000_000_000


def _stream(rate_hz: float, seconds: float, jitter_ms: float, drop: float, latency_ms: float,
            topic: int, rng: np.random.Generator, t0: float = 0.0) -> list[tuple[float, int, int, tuple[int, int]]]:
    """Messages (arrival_s, topic, stamp_ns, id) of one camera; id = (topic, frame index)."""
    out = []
    for k in range(int(seconds * rate_hz)):
        if rng.random() < drop:
            continue
        stamp = t0 + k / rate_hz + rng.normal(0.0, jitter_ms * 1e-3)
        arrival = stamp + latency_ms * 1e-3 + abs(rng.normal(0.0, 1e-3))
        out.append((arrival, topic, int(round(stamp * S)), (topic, k)))
    return out


def _run(messages, queue_size: int = 10, max_interval_ns: int | None = None) -> tuple[list, ApproximateTimeSync]:
    sync = ApproximateTimeSync(2, queue_size, max_interval_ns)
    sets = []
    for _, topic, stamp, ident in sorted(messages, key=lambda m: m[0]):
        sets.extend(sync.push(topic, stamp, ident))
    return sets, sync


def _precision_recall(sets, truth: set) -> tuple[float, float]:
    found = {(s[0][1], s[1][1]) for s in sets}
    correct = len(found & truth)
    return correct / max(len(found), 1), correct / max(len(truth), 1)


def _check_invariants(sets) -> None:
    used = [item for s in sets for _, item in s]
    assert len(used) == len(set(used)), "a message was used twice"
    for i in range(2):
        stamps = [s[i][0] for s in sets]
        assert all(a < b for a, b in zip(stamps, stamps[1:])), "sets are not strictly increasing in time"


def _nearest_truth(thermal, rgb, max_gap_ns: int) -> set:
    rgb_stamps = np.array([m[2] for m in rgb])
    truth = set()
    for _, _, stamp, ident in thermal:
        j = int(np.argmin(np.abs(rgb_stamps - stamp)))
        if abs(rgb_stamps[j] - stamp) <= max_gap_ns:
            truth.add((ident, rgb[j][3]))
    return truth


def test_equal_rates_exact_stamps_pair_every_frame() -> None:
    rng = np.random.default_rng(0)
    thermal, rgb = _stream(30, 5, 0, 0, 5, 0, rng), _stream(30, 5, 0, 0, 5, 1, rng)
    rgb = [(a, 1, thermal[i][2], ident) for i, (a, _, _, ident) in enumerate(rgb)]  # identical stamps
    sets, sync = _run(thermal + rgb)
    assert [(s[0][1][1], s[1][1][1]) for s in sets] == [(k, k) for k in range(len(sets))]
    assert len(sets) >= len(thermal) - 1  # the last set can wait for a message that never comes
    assert sync.stats.matched == len(sets)
    _check_invariants(sets)


def test_jitter_precision_and_recall() -> None:
    rng = np.random.default_rng(1)
    thermal, rgb = _stream(30, 20, 3, 0, 20, 0, rng), _stream(30, 20, 3, 0, 20, 1, rng)
    truth = {((0, k), (1, k)) for k in range(len(thermal) - 1)}
    sets, _ = _run(thermal + rgb)
    precision, recall = _precision_recall(sets, truth)
    assert precision >= 0.99 and recall >= 0.99, (precision, recall)
    _check_invariants(sets)


def test_drops_never_produce_wrong_pairs() -> None:
    rng = np.random.default_rng(2)
    thermal = _stream(30, 20, 1, 0.15, 10, 0, rng)
    rgb = _stream(30, 20, 1, 0.15, 10, 1, rng)
    both = {i[1] for *_, i in thermal} & {i[1] for *_, i in rgb}
    truth = {((0, k), (1, k)) for k in both}
    sets, sync = _run(thermal + rgb, max_interval_ns=20 * MS)
    precision, recall = _precision_recall(sets, truth)
    assert precision == 1.0 and recall >= 0.98, (precision, recall)
    assert sum(sync.stats.dropped) > 0
    _check_invariants(sets)


def test_9hz_thermal_against_30hz_rgb_takes_the_nearest_rgb_frame() -> None:
    rng = np.random.default_rng(3)
    thermal = _stream(9, 30, 2, 0, 40, 0, rng)
    rgb = _stream(30, 30, 2, 0, 15, 1, rng)
    truth = _nearest_truth(thermal[:-1], rgb, 20 * MS)
    sets, sync = _run(thermal + rgb, queue_size=10)
    precision, recall = _precision_recall(sets, truth)
    assert precision >= 0.97 and recall >= 0.97, (precision, recall)
    # The policy's age penalty (0.1) prefers the earlier frame in near-ties; every miss must be one.
    nearest = {t: r for t, r in truth}
    stamp = {i: s for _, _, s, i in thermal + rgb}
    for (_, t), (_, r) in sets:
        if t in nearest and nearest[t] != r:
            assert abs(stamp[r] - stamp[t]) < 1.25 * abs(stamp[nearest[t]] - stamp[t])
    assert sync.stats.dropped[1] >= len(rgb) - len(thermal) - 2  # unmatched RGB frames are discarded
    _check_invariants(sets)


def test_out_of_order_arrival_across_topics_gives_the_same_sets() -> None:
    rng = np.random.default_rng(4)
    thermal = _stream(15, 10, 2, 0.05, 5, 0, rng)
    rgb = _stream(30, 10, 2, 0.05, 5, 1, rng)
    in_order, _ = _run(thermal + rgb)
    # RGB now arrives 120 ms late: whole runs of thermal messages come before their partners.
    late_rgb = [(a + 0.120, t, s, i) for a, t, s, i in rgb]
    reordered, _ = _run(thermal + late_rgb)
    assert [(s[0][1], s[1][1]) for s in reordered] == [(s[0][1], s[1][1]) for s in in_order]


def test_bag_loop_resets_instead_of_stalling() -> None:
    rng = np.random.default_rng(5)
    first = _stream(30, 5, 1, 0, 5, 0, rng) + _stream(30, 5, 1, 0, 5, 1, rng)
    # The bag plays again: same stamps, arriving after the first pass.
    second = [(a + 6.0, t, s, (t, 1000 + i[1])) for a, t, s, i in first]
    sets, sync = _run(first + second)
    assert sync.stats.resets == 1
    second_pass = [s for s in sets if s[0][1][1] >= 1000]
    assert len(second_pass) >= 148  # 150 frames, the last may wait
    assert all(s[0][1][1] == s[1][1][1] for s in sets)


def test_max_interval_bounds_the_spread_of_a_set() -> None:
    rng = np.random.default_rng(6)
    thermal = _stream(10, 5, 0, 0, 5, 0, rng)
    rgb = [(a + 0.03, 1, s + 30 * MS, (1, i[1])) for a, _, s, i in thermal]  # always 30 ms apart
    assert _run(thermal + rgb, max_interval_ns=20 * MS)[0] == []
    assert len(_run(thermal + rgb, max_interval_ns=40 * MS)[0]) >= len(thermal) - 1


def test_a_stalled_camera_keeps_memory_bounded() -> None:
    sync = ApproximateTimeSync(2, queue_size=5)
    sync.push(0, 0, "t0")
    for k in range(1000):
        assert sync.push(1, k * 33 * MS + 1, k) == [] or k == 0
        assert max(sync.pending()) <= 6
    assert sync.stats.dropped[1] >= 990


@pytest.mark.parametrize("seed", range(20))
def test_random_streams_keep_the_invariants(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    msgs = _stream(rng.uniform(5, 40), 4, rng.uniform(0, 10), rng.uniform(0, 0.3), rng.uniform(0, 80), 0, rng)
    msgs += _stream(rng.uniform(5, 40), 4, rng.uniform(0, 10), rng.uniform(0, 0.3), rng.uniform(0, 80), 1, rng)
    sets, sync = _run(msgs, queue_size=int(rng.integers(2, 12)), max_interval_ns=int(rng.uniform(5, 60) * MS))
    _check_invariants(sets)
    assert sync.stats.matched == len(sets)
    held = sum(sync.pending())
    assert sum(sync.stats.received) == 2 * len(sets) + sum(sync.stats.dropped) + held


def test_three_inputs_and_argument_checks() -> None:
    sync = ApproximateTimeSync(3, queue_size=4)
    sets = []
    for k in range(10):
        for i in range(3):
            sets += sync.push(i, k * 100 * MS + i * MS, (i, k))
    assert [tuple(item for _, item in s) for s in sets][:3] == [((0, k), (1, k), (2, k)) for k in range(3)]
    with pytest.raises(IndexError):
        sync.push(3, 0)
    with pytest.raises(ValueError):
        ApproximateTimeSync(1, 5)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, 0)
