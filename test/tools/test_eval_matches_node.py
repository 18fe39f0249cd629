"""``psfusion-eval --params-file`` runs the pipeline the node runs: same frames in, same fused images out.

A vehicle parameter file with an inverted (black-hot) thermal camera and a homography; a tiny bag of mono16
thermal at another size than the RGB camera. The bag goes through ``psfusion-eval`` and, frame by frame, through
a real ``psfusion_node`` started with the same file; the fused images must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from psfusion_ros.io.bags import BagReader, BagWriter, header, image_message, stamp_of
from psfusion_ros.io.image_codec import decode_image
from psfusion_ros.pipeline.config import write_params_file
from ros_harness import Harness, NodeProcess

BIN = Path(sys.executable).parent
RGB_SIZE, THERMAL_SIZE = (64, 96), (48, 72)
PAIRS = 5
START_NS = 1_700_000_000_000_000_000


def _frames() -> list[tuple[int, np.ndarray, np.ndarray]]:
    H = misalignment_homography(RGB_SIZE, THERMAL_SIZE)
    out = []
    for k in range(PAIRS):
        scene = synthetic_frame(k, *RGB_SIZE, seed=9)
        out.append((START_NS + k * 100_000_000, scene.visible, thermal_counts(scene, THERMAL_SIZE, H)))
    return out


def test_eval_with_the_vehicle_params_file_equals_the_node(tmp_path: Path, official_checkpoint: Path) -> None:
    H = misalignment_homography(RGB_SIZE, THERMAL_SIZE)
    params = write_params_file(tmp_path / "vehicle.yaml", {
        "checkpoint": str(official_checkpoint), "device": "cpu", "network_height": 64, "network_width": 96,
        "thermal.invert": True, "registration.mode": "homography",
        "registration.homography": [float(v) for v in H.ravel()], "qos.reliability": "reliable",
        "diagnostics.period": 0.5})
    frames = _frames()
    bag = tmp_path / "drive"
    with BagWriter(bag) as writer:
        for stamp, rgb, thermal in frames:
            writer.write("/thermal/image_raw", image_message(thermal, "mono16", header(stamp - 1_000_000, "th")),
                         stamp - 1_000_000)
            writer.write("/rgb/image_raw", image_message(rgb, "rgb8", header(stamp, "rgb_optical")), stamp)

    result = subprocess.run([str(BIN / "psfusion-eval"), "--bag", str(bag), "--params-file", str(params),
                             "--out", str(tmp_path / "eval"), "--no-html"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["pairs"] == PAIRS and report["parameters"]["thermal.invert"] is True
    assert report["parameters"]["registration.mode"] == "homography"
    with BagReader(tmp_path / "eval" / "bag") as reader:
        offline = {stamp_of(m): np.array(decode_image(m)) for _, _, m in reader.messages(["/psfusion/fused/image"])}

    node = NodeProcess({}, tmp_path / "node.log", params_file=params)
    h = Harness(reliability=ReliabilityPolicy.RELIABLE)
    live: dict[int, np.ndarray] = {}
    try:
        fused = h.record(Image, "fused/image")
        assert h.wait_for_node(120), node.output()
        # ApproximateTime emits pair k when pair k+1 arrives: stay one pair ahead of the outputs, never more,
        # so the node fuses every pair in order (no mailbox drops: the thermal smoothing sees what eval saw)
        for k, (stamp, rgb, thermal) in enumerate(frames):
            h.pub_thermal.publish(h.image(thermal, "mono16", stamp - 1_000_000, "th"))
            h.pub_rgb.publish(h.image(rgb, "rgb8", stamp, "rgb_optical"))
            if k >= 1:
                assert h.spin_until(lambda k=k: len(fused) >= k, 120), node.output()
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()
    for msg in fused:
        live[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = np.array(decode_image(msg))
    assert len(live) == PAIRS - 1  # the last pair waits for a next frame that never comes
    for stamp, image in live.items():
        difference = np.abs(image.astype(int) - offline[stamp].astype(int))
        assert difference.max() <= 1 and (difference == 0).mean() > 0.999, stamp
