"""The node on image_transport's compressed topics: 16-bit PNG thermal and JPEG RGB in (the base topic's remap
applies, as with image_transport), fused/image/compressed and segmentation/color/compressed out, encoded only
while someone subscribes; hostile compressed payloads are counted drops. Real processes, bounded waits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from test_node import EPOCH_NS, PERIOD_NS, _frames, _node_args

from psfusion_ros.constants import MSRS_PALETTE
from psfusion_ros.io.compressed import encode_compressed
from ros_harness import PARAMS_FILE, Feeder, Harness, NodeProcess, stamp_of


def _values(h: Harness) -> dict[str, str]:
    for arr in reversed(h.received.get("/diagnostics", [])):
        for s in arr.status:
            if s.name == "psfusion: fusion":
                return {kv.key: kv.value for kv in s.values}
    return {}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def test_compressed_in_and_out(tmp_path: Path, official_checkpoint: Path) -> None:
    args = _node_args(official_checkpoint, **{"thermal.transport": "compressed", "rgb.transport": "compressed"})
    node = NodeProcess(args, tmp_path / "node.log", PARAMS_FILE, ros_args=["-r", "rgb/image_raw:=/front/rgb"])
    h = Harness()
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        h.pub_thermal = h.node.create_publisher(CompressedImage, "thermal/image_raw/compressed", qos)
        h.pub_rgb = h.node.create_publisher(CompressedImage, "/front/rgb/compressed", qos)
        fused = h.record(Image, "fused/image")
        masks = h.record(Image, "segmentation/mask")
        h.record(DiagnosticArray, "/diagnostics")
        assert h.wait_for_node(), node.output()

        def make(i: int) -> tuple[CompressedImage, CompressedImage]:
            thermal, rgb = _frames(i)
            stamp = EPOCH_NS + i * PERIOD_NS
            msgs = []
            for pixels, codec, frame in ((thermal, "png", "thermal"), (rgb, "jpeg", "rgb")):
                fmt, data = encode_compressed(pixels, codec)
                msg = CompressedImage(format=fmt, data=data)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                msg.header.frame_id = frame
                msgs.append(msg)
            return msgs[0], msgs[1]

        feeder = Feeder(h, fused, make)
        assert feeder.until(lambda: len(fused) >= 3), node.output()
        # nobody subscribes to the compressed outputs yet: nothing was encoded
        assert h.spin_until(lambda: int(_values(h).get("frames published", 0)) >= 3, 30)
        assert _values(h)["compressed images encoded"] == "0"

        jpegs = h.record(CompressedImage, "fused/image/compressed")
        pngs = h.record(CompressedImage, "segmentation/color/compressed")
        assert feeder.until(lambda: len(jpegs) >= 2 and len(pngs) >= 2), node.output()
        assert h.spin_until(lambda: int(_values(h).get("compressed images encoded", 0)) >= 4, 30)

        hostile = [b"\xff\xd8\xff\xe0 truncated", encode_compressed(_frames(0)[1], "jpeg")[1][:-500]]
        for data in hostile:
            h.pub_rgb.publish(CompressedImage(format="rgb8; jpeg compressed bgr8", data=data))
        colour = encode_compressed(_frames(0)[1], "jpeg")[1]
        h.pub_thermal.publish(CompressedImage(format="mono16; jpeg compressed bgr8", data=colour))
        assert h.spin_until(lambda: int(_values(h).get("rgb decode errors", 0)) >= 1
                            and int(_values(h).get("thermal decode errors", 0)) >= 1, 60), node.output()
        before = len(fused)
        assert feeder.until(lambda: len(fused) > before), node.output()  # still fusing
    finally:
        h.close()
    assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()
    assert "/front/rgb/compressed" in node.output()  # the ready line names the remapped topic

    raw_by_stamp = {stamp_of(m): m for m in fused}
    mask_by_stamp = {stamp_of(m): m for m in masks}
    for msg in jpegs:
        raw = raw_by_stamp[stamp_of(msg)]
        assert msg.format == "rgb8; jpeg compressed bgr8"
        decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR),
                               cv2.COLOR_BGR2RGB)
        pixels = np.frombuffer(bytes(raw.data), np.uint8).reshape(raw.height, raw.width, 3)
        assert _psnr(decoded, pixels) > 30, _psnr(decoded, pixels)
    for msg in pngs:
        assert msg.format == "rgb8; png compressed bgr8"
        mask = mask_by_stamp[stamp_of(msg)]
        ids = np.frombuffer(bytes(mask.data), np.uint8).reshape(mask.height, mask.width)
        decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR),
                               cv2.COLOR_BGR2RGB)
        assert np.array_equal(decoded, np.asarray(MSRS_PALETTE, np.uint8)[ids])  # PNG: exact
