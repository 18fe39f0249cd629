"""The launch file and the parameter file against the node's parameter table.

``launch``/``launch_ros`` are not installable here, so the launch file runs against minimal stand-ins
that record what it asks for; the node itself is tested through its console script with the same YAML.
"""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest

from psfusion_ros.ros.params import DEFAULTS, PARAMS, ConfigError, load_params_file, validate

REPO = Path(__file__).resolve().parents[2]


def test_yaml_lists_every_parameter_with_its_default() -> None:
    values = load_params_file(REPO / "config" / "psfusion.yaml")
    assert values == DEFAULTS


def test_readme_documents_every_parameter() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [p.name for p in PARAMS if f"`{p.name}`" not in readme]
    assert not missing, missing


@pytest.mark.parametrize(
    ("change", "message"),
    [({"device": "tpu"}, "device='tpu' must be one of"), ({"network_width": 650}, "multiples of 32"),
     ({"sync.queue_size": 0}, "at least 1"), ({"checkpoint": ""}, "checkpoint is empty")],
)
def test_validation_messages(change: dict, message: str) -> None:
    values = dict(DEFAULTS, checkpoint="x.pth") | change
    with pytest.raises(ConfigError, match=message):
        validate(values)


class _Recorder:
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    values: dict[str, str] = {}

    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: object) -> str:
        return self.values[self.name]


class _FindPackageShare:
    def __init__(self, package: str) -> None:
        self.package = package

    def perform(self, context: object) -> str:
        return f"/opt/ros/share/{self.package}"


def _load_launch(monkeypatch: pytest.MonkeyPatch) -> dict:
    modules = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda entities: list(entities)),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=_Recorder, OpaqueFunction=_Recorder),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=_LaunchConfiguration),
        "launch_ros.actions": types.SimpleNamespace(Node=_Recorder),
        "launch_ros.substitutions": types.SimpleNamespace(FindPackageShare=_FindPackageShare),
        "launch_ros": types.SimpleNamespace(),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return runpy.run_path(str(REPO / "launch" / "psfusion.launch.py"))


def test_launch_file_builds_the_node_from_the_yaml_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = _load_launch(monkeypatch)
    entities = namespace["generate_launch_description"]()
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if e.args}
    expected = {"thermal_topic", "rgb_topic", "checkpoint", "calibration", "device", "backend", "namespace"}
    assert expected <= set(declared)
    _LaunchConfiguration.values = dict(declared, checkpoint="/models/best_model.pth", rgb_topic="/cam/color",
                                       namespace="front")
    (node,) = entities[-1].kwargs["function"](None)
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == (
        "psfusion_ros", "psfusion_node", "psfusion", "front")
    params_file, overrides = kw["parameters"]
    assert params_file == "/opt/ros/share/psfusion_ros/config/psfusion.yaml"
    assert overrides == {"checkpoint": "/models/best_model.pth"}  # empty arguments keep the YAML's values
    assert set(namespace["OVERRIDES"].values()) <= set(DEFAULTS)
    assert ("rgb/image_raw", "/cam/color") in kw["remappings"]
    assert {src for src, _ in kw["remappings"]} == {"thermal/image_raw", "rgb/image_raw", "thermal/camera_info",
                                                    "rgb/camera_info"}
    console = Path(sys.executable).parent / "psfusion_node"
    assert console.exists()
