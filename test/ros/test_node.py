"""psfusion_node end to end: real processes, real rclpy, real network at 64x96, every wait bounded and event-driven."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from psfusion_ros.constants import MSRS_PALETTE
from ros_harness import Feeder, Harness, stamp_of

RGB_SIZE = (96, 128)  # H, W: not the network size, so the outputs must be resized back
THERMAL_SIZE = (60, 80)  # a smaller thermal sensor: identity registration rescales it
PERIOD_NS = 100_000_000
EPOCH_NS = 1_700_000_000_000_000_000


def _frames(k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(abs(k))
    thermal = (20_000 + 3_000 * rng.random(THERMAL_SIZE)).astype(np.uint16)  # raw 16-bit counts
    rgb = (rng.random(RGB_SIZE + (3,)) * 255).astype(np.uint8)
    return thermal, rgb


def _pairs(h: Harness, start_k: int = 0, info_pub=None):
    def make(i: int) -> tuple[Image, Image]:
        k = start_k + i
        thermal, rgb = _frames(k)
        stamp = EPOCH_NS + k * PERIOD_NS
        rgb_msg = h.image(rgb, "rgb8", stamp, "rgb_optical")
        if info_pub is not None:
            info = CameraInfo(header=rgb_msg.header, width=RGB_SIZE[1], height=RGB_SIZE[0])
            info.k = [100.0, 0.0, 64.0, 0.0, 100.0, 48.0, 0.0, 0.0, 1.0]
            info_pub.publish(info)
        return h.image(thermal, "mono16", stamp - 1_000_000, "thermal_optical"), rgb_msg

    return make


def _node_args(checkpoint: Path, **extra: object) -> dict[str, object]:
    return {"checkpoint": str(checkpoint), "network_height": 64, "network_width": 96, "device": "cpu",
            "diagnostics.period": 0.3, **extra}


def _status(h: Harness) -> list:
    return [s for arr in h.received.get("/diagnostics", []) for s in arr.status if s.name == "psfusion: fusion"]


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE])
def test_node_fuses_live_mono16_and_rgb8(start_node, official_checkpoint: Path, reliability) -> None:
    node = start_node(**_node_args(official_checkpoint, **{"publish.overlay": True}))
    h = Harness(reliability)
    try:
        info_pub = h.node.create_publisher(CameraInfo, "rgb/camera_info", 10)
        fused = h.record(Image, "fused/image")
        overlays = h.record(Image, "fused/overlay")
        masks = h.record(Image, "segmentation/mask")
        colors = h.record(Image, "segmentation/color")
        infos = h.record(CameraInfo, "fused/camera_info")
        h.record(DiagnosticArray, "/diagnostics")
        assert h.wait_for_node(), node.output()
        assert h.spin_until(lambda: info_pub.get_subscription_count() > 0, 30)
        feeder = Feeder(h, fused, _pairs(h, info_pub=info_pub))
        assert feeder.until(lambda: len(fused) >= 3 and len(masks) >= 3 and colors and overlays and infos), \
            node.output()
        assert h.spin_until(lambda: any(int({kv.key: kv.value for kv in s.values}["frames published"]) >= 3
                                        for s in _status(h)), 30)
    finally:
        h.close()
    assert node.interrupt() == 0, node.output()

    by_stamp = {stamp_of(m): m for m in feeder.sent}
    for out in fused:
        src = by_stamp[stamp_of(out)]  # the RGB frame's header
        assert out.header.frame_id == src.header.frame_id == "rgb_optical"
        assert (out.encoding, out.height, out.width) == ("rgb8", *RGB_SIZE)
        assert out.step == RGB_SIZE[1] * 3 and len(out.data) == out.step * out.height
    for mask in masks:
        assert stamp_of(mask) in by_stamp
        assert (mask.encoding, mask.height, mask.width) == ("mono8", *RGB_SIZE)
        assert np.frombuffer(mask.data, np.uint8).max() < 9
    colour = np.frombuffer(colors[0].data, np.uint8).reshape(*RGB_SIZE, 3)
    palette = {tuple(c) for c in MSRS_PALETTE}
    assert {tuple(c) for c in colour.reshape(-1, 3)} <= palette
    assert infos[0].header.frame_id == "rgb_optical" and infos[0].width == RGB_SIZE[1]
    assert (overlays[0].encoding, overlays[0].height, overlays[0].width) == ("rgb8", *RGB_SIZE)
    values = {kv.key: kv.value for kv in _status(h)[-1].values}
    assert int(values["matched pairs"]) >= 3 and values["device"] == "cpu"
    assert values["network size"] == "64x96" and float(values["latency p50 (ms)"]) > 0
    assert values["checkpoint"] == str(official_checkpoint) and values["thermal range"].startswith("percentile: ")
    assert "stopped cleanly" in node.output()
    assert f"ready: checkpoint {official_checkpoint}" in node.output() and "engine warmed up in" in node.output()


def test_bad_input_is_reported_not_fatal_and_a_bag_loop_resets_sync(start_node, official_checkpoint: Path) -> None:
    node = start_node(**_node_args(official_checkpoint))
    h = Harness()
    try:
        fused = h.record(Image, "fused/image")
        h.record(DiagnosticArray, "/diagnostics")
        assert h.wait_for_node(), node.output()
        # An unknown encoding and a truncated buffer, repeated until the node has seen them (best effort).
        bad = h.image(np.zeros((8, 8), np.uint8), "mono8", 1, "x")
        bad.encoding = "bayer_rggb8"
        truncated = h.image(np.zeros((8, 8), np.uint16), "mono16", 2, "x")
        truncated.data = truncated.data[:10]

        def decode_errors() -> int:
            for status in reversed(_status(h)):
                return int({kv.key: kv.value for kv in status.values}["thermal decode errors"])
            return 0

        for _ in range(60):
            h.pub_thermal.publish(bad)
            h.pub_thermal.publish(truncated)
            if h.spin_until(lambda: decode_errors() >= 2, 1.0):
                break
        assert decode_errors() >= 2
        assert any(s.level == b"\x01" for s in _status(h))
        feeder = Feeder(h, fused, _pairs(h))
        assert feeder.until(lambda: len(fused) >= 1), node.output()  # still fusing
        # The bag loops: stamps jump back 10 s. The synchronizer resets and pairs the new frames.
        before = len(fused)
        looped = Feeder(h, fused, _pairs(h, start_k=-100))
        assert looped.until(lambda: len(fused) > before), node.output()
        assert stamp_of(fused[-1]) < stamp_of(fused[before - 1])
        assert node.proc.poll() is None
    finally:
        h.close()
    assert node.interrupt() == 0
    assert "Traceback" not in node.output()
    assert "unsupported encoding 'bayer_rggb8'" in node.output()
    assert "synchronizer reset" in node.output()


def test_node_runs_a_checkpoint_from_psfusion_train(start_node, trained_run: dict) -> None:
    checkpoint = trained_run["out"] / "last.pth"  # optimizer state and training extras included
    node = start_node(**_node_args(checkpoint))
    h = Harness()
    try:
        fused = h.record(Image, "fused/image")
        masks = h.record(Image, "segmentation/mask")
        assert h.wait_for_node(), node.output()
        feeder = Feeder(h, fused, _pairs(h))
        assert feeder.until(lambda: len(fused) >= 2 and len(masks) >= 2), node.output()
    finally:
        h.close()
    assert node.interrupt() == 0, node.output()
    assert f"ready: checkpoint {checkpoint}" in node.output()
    assert (masks[0].encoding, masks[0].height, masks[0].width) == ("mono8", *RGB_SIZE)
