"""Starting and stopping psfusion_node as launch files and respawn logic see it: bad configuration is one line and
exit 2, every way of stopping is exit 0 without a traceback. Real processes; waits are bounded and event-driven."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.srv import GetParameters

from psfusion_ros.harness.node_process import node_executable
from ros_harness import PARAMS_FILE, Harness, NodeProcess


def _bad_calibration(tmp: Path) -> str:
    path = tmp / "rig.yaml"
    path.write_text(yaml.safe_dump({"mode": "homography", "points": 12}))
    return str(path)


def _hostile_calibration(tmp: Path) -> str:
    """Wrong types where the loader used to raise TypeError ("unhashable type") and a traceback at start-up."""
    path = tmp / "hostile.yaml"
    path.write_text(yaml.safe_dump({"mode": ["homography"], "homography": "identity", "thermal_size": [0, 0]}))
    return str(path)


def _alias_bomb(tmp: Path) -> str:
    path = tmp / "bomb.yaml"
    path.write_text("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"b{i}: &b{i} [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 9)}]\n" for i in range(10))
        + "mode: homography\nhomography: *b9\n")
    return str(path)


def _text_file(tmp: Path) -> str:
    path = tmp / "best_model.pth"
    path.write_text("404 Not Found\n")
    return str(path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"checkpoint": "{tmp}/missing.pth"}, "missing.pth: no such file"),
     ({"checkpoint": _text_file}, "a text file, not a PyTorch checkpoint"),
     ({"network_height": 100000}, "network_height=100000 is out of range"),
     ({"diagnostics.period": 0.0}, "diagnostics.period=0.0 is out of range"),
     ({"diagnostics.stale_timeout": -1.0}, "diagnostics.stale_timeout=-1.0 is out of range"),
     ({"publish.overlay_alpha": 1.5}, "publish.overlay_alpha=1.5 is out of range"),
     ({"qos.depth": -1}, "qos.depth=-1 is out of range"),
     ({"sync.queue_size": 0}, "sync.queue_size=0 is out of range"),
     ({"bogus": 3}, "unknown parameter 'bogus'"),
     ({"thermal.invrt": True}, "did you mean thermal.invert?"),
     ({"thermal.invert": 1}, "thermal.invert must be true or false, got 1"),
     ({"registration.calibration_file": _bad_calibration}, "homography calibration has no homography"),
     ({"registration.calibration_file": _hostile_calibration}, "hostile.yaml: mode must be one of"),
     ({"registration.calibration_file": _alias_bomb}, "bomb.yaml: more than 32 YAML aliases"),
     ({"allow_untrained": False}, "no checkpoint: give the PSFusion weights")],
)
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, overrides: dict, message: str) -> None:
    values: dict[str, object] = {"allow_untrained": True, "device": "cpu"}
    for key, value in overrides.items():
        values[key] = value(tmp_path) if callable(value) else str(value).format(tmp=tmp_path) \
            if isinstance(value, str) else value
    node = NodeProcess(values, tmp_path / "node.log", PARAMS_FILE)
    try:
        assert node.proc.wait(timeout=120) == 2, node.output()
    finally:
        node.stop()
    lines = node.output().strip().splitlines()
    assert lines[-1].startswith("psfusion_node: error: ") and message in lines[-1], lines
    assert "Traceback" not in node.output()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node_executable(), *args], capture_output=True, text=True, timeout=120)


def test_help_and_arguments_outside_ros_args() -> None:
    result = _run("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: psfusion_node [--ros-args")
    result = _run("checkpoint:=/models/best_model.pth")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "psfusion_node: error: unexpected argument 'checkpoint:=/models/best_model.pth'; parameters go after "
        "--ros-args: psfusion_node --ros-args -p checkpoint:=/models/best_model.pth")
    result = _run("--ros-args", "-r", "not a remap")
    assert result.returncode == 2 and "invalid ROS arguments" in result.stderr and "Traceback" not in result.stderr


def test_integers_for_doubles_are_accepted_from_params_files_and_command_line(tmp_path: Path) -> None:
    params = tmp_path / "vehicle.yaml"
    params.write_text(yaml.safe_dump({"/**/psfusion": {"ros__parameters": {
        "allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
        "sync": {"max_interval": 1}, "thermal": {"mode": "fixed", "fixed_min": 2000}}}}))
    node = NodeProcess({"thermal.fixed_max": 16000}, tmp_path / "node.log", params)
    h = Harness()
    try:
        assert node.wait_for_output("ready:"), node.output()
        response = h.call(GetParameters, "/psfusion/get_parameters", GetParameters.Request(
            names=["sync.max_interval", "thermal.fixed_max", "thermal.fixed_min"]))
        assert [v.double_value for v in response.values] == [1.0, 16000.0, 2000.0]
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM),
                                     (signal.SIGTERM, signal.SIGINT)])
def test_a_second_signal_while_stopping_still_exits_0(tmp_path: Path, signals: tuple[int, int]) -> None:
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96},
                       tmp_path / "node.log", PARAMS_FILE)
    try:
        assert node.wait_for_output("ready:"), node.output()
        for sig in signals:
            node.proc.send_signal(sig)
        assert node.proc.wait(timeout=60) == 0, node.output()
    finally:
        node.stop()
    assert "Traceback" not in node.output() and "terminate called" not in node.output()
    assert "stopped cleanly" in node.output()


@pytest.mark.parametrize(("moment", "twice"), [
    # handlers installed, torch/rclpy being imported: a KeyboardInterrupt there became numpy's ImportError once
    ("psfusion_node: starting", False), ("psfusion_node: starting", True),
    # the 480x640 engine warming up in its worker thread: leaving it running ended in SIGABRT at exit
    ("running seeded UNTRAINED weights", False), ("running seeded UNTRAINED weights", True)])
def test_a_signal_during_start_up_exits_0(tmp_path: Path, moment: str, twice: bool) -> None:
    node = NodeProcess({"allow_untrained": True, "device": "cpu"}, tmp_path / "node.log", PARAMS_FILE)
    try:
        assert node.wait_for_output(moment), node.output()
        node.proc.send_signal(signal.SIGINT)
        if twice:
            node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(timeout=60) == 0, node.output()
    finally:
        node.stop()
    assert "Traceback" not in node.output() and "terminate called" not in node.output()
    assert "stopped cleanly" in node.output()


def test_a_signal_while_the_interpreter_exits_still_exits_0(tmp_path: Path) -> None:
    """Python puts SIG_DFL back for handled signals when it finalizes: before the fix, a SIGINT sent right after
    "stopped cleanly" ended the node by the signal (exit -2) every time."""
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96},
                       tmp_path / "node.log", PARAMS_FILE)
    try:
        assert node.wait_for_output("ready:"), node.output()
        node.proc.send_signal(signal.SIGINT)
        assert node.wait_for_output("stopped cleanly", timeout=60), node.output()
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGINT)
        assert node.proc.wait(timeout=60) == 0, node.output()
    finally:
        node.stop()
    assert "Traceback" not in node.output()
