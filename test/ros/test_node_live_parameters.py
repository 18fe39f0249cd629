"""Every live parameter through the real SetParameters service, as ``ros2 param set`` sends it: rclpy hands the
node's callback arrays as ``array.array``, not lists (every list change used to be refused), and a value of the
wrong type or a hostile calibration file is refused with a reason while the node keeps fusing as before."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml
from rcl_interfaces.srv import GetParameters
from sensor_msgs.msg import Image

from psfusion_ros.pipeline.parameters import PARAMS
from ros_harness import PARAMS_FILE, Feeder, Harness, NodeProcess, stamp_of

EPOCH_NS = 1_700_000_000_000_000_000
SIZE = (64, 96)
_C, _S = math.cos(math.radians(1.0)), math.sin(math.radians(1.0))

#: a valid value other than the default for every live parameter (dict order is the order they are set in)
LIVE_VALUES: dict[str, object] = {
    "sync.max_interval": 0.1, "sync.thermal_offset": 0.01,
    "registration.homography": [1.0, 0.0, 1.5, 0.0, 1.0, -1.0, 0.0, 0.0, 1.0],
    "registration.rotation": [_C, -_S, 0.0, _S, _C, 0.0, 0.0, 0.0, 1.0],
    "registration.translation": [0.05, 0.0, 0.0], "registration.plane_depth": 20.0,
    "registration.mode": "homography", "registration.calibration_file": "{calibration}",
    "registration.monitor": False, "registration.check_period": 5.0, "registration.warn_px": 3.0,
    "registration.refine": "auto",
    "thermal.mode": "fixed", "thermal.fixed_max": 30000.0, "thermal.fixed_min": 1000.0,
    "thermal.low_percentile": 2.0, "thermal.high_percentile": 98.0, "thermal.smoothing": 0.5,
    "thermal.invert": True, "thermal.normalize_8bit": True,
    "publish.color": False, "publish.overlay": True, "publish.overlay_alpha": 0.3, "publish.camera_info": False,
    "publish.compressed": False, "publish.jpeg_quality": 75,
    "rgb_frame_id": "rgb_optical", "diagnostics.period": 0.5, "diagnostics.stale_timeout": 2.0,
    "diagnostics.expected_rate": 5.0,
}


def _wrong_type(kind: str) -> object:
    return {"bool": 1, "str": 3, "float_list": ["a", "b", "c"], "int": "x", "float": "x"}[kind]


def _pairs(h: Harness):
    rng = np.random.default_rng(0)
    thermal = (20_000 + 4_000 * rng.random(SIZE)).astype(np.uint16)
    rgb = (rng.random(SIZE + (3,)) * 255).astype(np.uint8)

    def make(i: int):
        stamp = EPOCH_NS + i * 100_000_000
        return h.image(thermal, "mono16", stamp, "th"), h.image(rgb, "rgb8", stamp, "rgb")

    return make


def _start(tmp_path: Path) -> tuple[NodeProcess, Harness, list, Feeder]:
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
                        "thermal.smoothing": 0.0}, tmp_path / "node.log", PARAMS_FILE)
    h = Harness()
    fused = h.record(Image, "fused/image")
    assert h.wait_for_node(120), node.output()
    feeder = Feeder(h, fused, _pairs(h))
    assert feeder.until(lambda: len(fused) >= 1), node.output()
    return node, h, fused, feeder


def test_every_live_parameter_changes_through_set_parameters_and_wrong_types_are_refused(tmp_path: Path) -> None:
    live = {p.name: p for p in PARAMS if p.dynamic}
    assert set(LIVE_VALUES) == set(live), "give every live parameter a value in LIVE_VALUES"
    calibration = tmp_path / "rig.yaml"
    calibration.write_text(yaml.safe_dump({"mode": "homography", "homography": np.eye(3).tolist()}))
    node, h, fused, feeder = _start(tmp_path)
    try:
        for name, param in live.items():
            refused = h.set_parameter("/psfusion", name, _wrong_type(param.kind))
            assert not refused.successful and refused.reason, name
        for name, value in LIVE_VALUES.items():
            value = value.format(calibration=calibration) if isinstance(value, str) else value
            result = h.set_parameter("/psfusion", name, value)
            assert result.successful, (name, result.reason)
        response = h.call(GetParameters, "/psfusion/get_parameters", GetParameters.Request(
            names=["registration.homography", "registration.translation"]))
        assert list(response.values[0].double_array_value) == LIVE_VALUES["registration.homography"]
        assert list(response.values[1].double_array_value) == LIVE_VALUES["registration.translation"]
        count = len(fused)
        assert feeder.until(lambda: len(fused) >= count + 2), node.output()  # still fusing with all of it
        assert node.proc.poll() is None
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()


def test_a_hostile_calibration_file_set_live_is_refused_and_the_old_registration_stays(tmp_path: Path) -> None:
    shifted = np.array([[1.0, 0, 6.0], [0, 1.0, 4.0], [0, 0, 1.0]])
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"mode": "homography", "homography": shifted.tolist()}))
    hostile = {
        "list_mode.yaml": yaml.safe_dump({"mode": ["homography"], "homography": np.eye(3).tolist()}),
        "string_matrix.yaml": yaml.safe_dump({"mode": "homography", "homography": "identity"}),
        "zero_size.yaml": yaml.safe_dump({"mode": "homography", "homography": np.eye(3).tolist(),
                                          "thermal_size": [0, 0], "rgb_size": [480, 640]}),
        "nan.yaml": "mode: homography\nhomography: [[.nan, 0, 0], [0, 1, 0], [0, 0, 1]]\n",
        "bomb.yaml": "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
            f"b{i}: &b{i} [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 9)}]\n" for i in range(10))
        + "mode: homography\nhomography: *b9\n",
        "not_yaml.yaml": "mode: [unclosed\n",
    }
    node, h, fused, feeder = _start(tmp_path)
    try:
        assert h.set_parameter("/psfusion", "registration.calibration_file", str(good)).successful
        count = len(fused)
        assert feeder.until(lambda: len(fused) >= count + 1), node.output()
        reference = np.frombuffer(fused[-1].data, np.uint8).copy()
        for name, text in hostile.items():
            path = tmp_path / name
            path.write_text(text)
            refused = h.set_parameter("/psfusion", "registration.calibration_file", str(path))
            assert not refused.successful and refused.reason.startswith(str(path)), (name, refused.reason)
            assert "\n" not in refused.reason
        response = h.call(GetParameters, "/psfusion/get_parameters", GetParameters.Request(
            names=["registration.calibration_file"]))
        assert response.values[0].string_value == str(good)
        count = len(fused)
        assert feeder.until(lambda: len(fused) >= count + 1), node.output()
        last = fused[-1]
        assert stamp_of(last) > EPOCH_NS and np.array_equal(np.frombuffer(last.data, np.uint8), reference)
        assert node.proc.poll() is None
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()
    assert "Traceback" not in node.output()
