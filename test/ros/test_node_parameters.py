"""``ros2 param set`` / ``describe`` against a running node: live values change what it publishes, everything else
is refused with a reason, and the descriptors say what is valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import DescribeParameters
from sensor_msgs.msg import Image

from ros_harness import PARAMS_FILE, Feeder, Harness, NodeProcess

EPOCH_NS = 1_700_000_000_000_000_000
SIZE = (64, 96)


def _pairs(h: Harness):
    rng = np.random.default_rng(0)
    thermal = (20_000 + 4_000 * rng.random(SIZE)).astype(np.uint16)
    rgb = (rng.random(SIZE + (3,)) * 255).astype(np.uint8)

    def make(i: int):  # the same scene again and again: only parameters change the output
        stamp = EPOCH_NS + i * 100_000_000
        return h.image(thermal, "mono16", stamp, "th"), h.image(rgb, "rgb8", stamp, "rgb")

    return make


def test_live_parameters_apply_or_are_refused_with_a_reason(tmp_path: Path) -> None:
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
                        "thermal.smoothing": 0.0, "publish.color": False},
                       tmp_path / "node.log", PARAMS_FILE)
    h = Harness()
    try:
        fused = h.record(Image, "fused/image")
        overlay = h.record(Image, "fused/overlay")
        assert h.wait_for_node(120), node.output()
        feeder = Feeder(h, fused, _pairs(h))
        assert feeder.until(lambda: len(fused) >= 2), node.output()
        before = np.frombuffer(fused[-1].data, np.uint8).astype(int)

        result = h.set_parameter("/psfusion", "thermal.invert", True)
        assert result.successful, result.reason
        count = len(fused)
        assert feeder.until(lambda: len(fused) >= count + 2), node.output()
        after = np.frombuffer(fused[-1].data, np.uint8).astype(int)
        assert np.abs(after - before).mean() > 1.0  # the network saw the inverted thermal image

        assert not h.set_parameter("/psfusion", "network_height", 128).successful  # read-only
        refused = h.set_parameter("/psfusion", "publish.overlay_alpha", 2.0)
        assert not refused.successful and refused.reason
        refused = h.set_parameter("/psfusion", "thermal.mode", "gamma")
        assert not refused.successful and "must be one of none | minmax | percentile | fixed" in refused.reason
        refused = h.set_parameter("/psfusion", "thermal.low_percentile", 99.5)
        assert not refused.successful and "must be below thermal.high_percentile" in refused.reason
        broken = tmp_path / "rig.yaml"
        broken.write_text(yaml.safe_dump({"mode": "homography"}))
        refused = h.set_parameter("/psfusion", "registration.calibration_file", str(broken))
        assert not refused.successful and "has no homography" in refused.reason

        assert h.set_parameter("/psfusion", "publish.overlay", True).successful  # a new output appears
        assert feeder.until(lambda: len(overlay) >= 1), node.output()
        assert h.set_parameter("/psfusion", "diagnostics.period", 0.25).successful

        response = h.call(DescribeParameters, "/psfusion/describe_parameters", DescribeParameters.Request(
            names=["network_height", "backend", "publish.overlay_alpha", "thermal.invert"]))
        height, backend, alpha, invert = response.descriptors
        assert height.read_only and height.type == ParameterType.PARAMETER_INTEGER
        assert (height.integer_range[0].from_value, height.integer_range[0].to_value,
                height.integer_range[0].step) == (32, 2048, 32)
        assert backend.additional_constraints == "one of eager | compile | tensorrt" and backend.read_only
        assert (alpha.floating_point_range[0].from_value, alpha.floating_point_range[0].to_value) == (0.0, 1.0)
        assert not invert.read_only
        assert node.proc.poll() is None
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()
    assert "parameters changed: thermal.invert=True" in node.output()
    assert "Traceback" not in node.output()
