"""``colcon build`` in a throw-away ROS workspace, as a vehicle's workspace builds the package (the README's lines).

colcon runs with the interpreter that has rclpy: the console scripts' shebang is the interpreter that ran colcon.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).parent / "colcon"

pytestmark = pytest.mark.colcon


def _clean_copy(dest: Path) -> None:
    """The repository as a fresh clone has it: tracked files and new files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if source.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name.decode())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not COLCON.exists():
        pytest.fail("colcon is not installed in this environment (requirements.txt lists it)")
    ws = tmp_path_factory.mktemp("ros2_ws")
    _clean_copy(ws / "src" / "psfusion_ros")
    result = subprocess.run([str(COLCON), "build", "--packages-select", "psfusion_ros"], cwd=ws,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Summary: 1 package finished" in result.stdout
    return ws


def _sourced(ws: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    return subprocess.run(["bash", "-c", f". install/setup.sh && {command}"], cwd=ws, capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_install_space_has_what_ros_tools_look_for(workspace: Path) -> None:
    prefix = workspace / "install" / "psfusion_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "psfusion_ros").is_file()
    share = prefix / "share" / "psfusion_ros"
    for path in ("package.xml", "config/psfusion.yaml", "config/fastdds_large_images.xml", "launch/psfusion.launch.py"):
        assert (share / path).is_file(), path
    assert (share / "config" / "psfusion.yaml").read_text() == (REPO / "config" / "psfusion.yaml").read_text()
    node = prefix / "lib" / "psfusion_ros" / "psfusion_node"
    assert node.is_file() and os.access(node, os.X_OK)
    assert node.read_text().splitlines()[0].startswith(f"#!{Path(sys.executable).parent}/python")  # has rclpy


def test_ament_index_and_the_installed_package_resolve_after_sourcing(workspace: Path) -> None:
    code = ("import json, psfusion_ros; from ament_index_python.packages import get_package_share_directory as g; "
            "print(json.dumps([g('psfusion_ros'), psfusion_ros.__file__]))")
    result = _sourced(workspace, f"{sys.executable} -c \"{code}\"")
    assert result.returncode == 0, result.stderr
    share, module = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(share) == workspace / "install" / "psfusion_ros" / "share" / "psfusion_ros"
    assert str(workspace / "install") in module  # the installed copy, not the source tree


def test_the_launch_file_defaults_to_the_installed_parameter_file(workspace: Path, monkeypatch) -> None:
    """launch/launch_ros are not installable here: stand-ins record what the launch file asks for, while
    FindPackageShare resolves through the real ament index of the install space."""
    from ament_index_python.packages import get_package_share_directory

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(workspace / "install" / "psfusion_ros"))

    class Recorder:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration:
        values: dict[str, str] = {}

        def __init__(self, name: str) -> None:
            self.name = name

        def perform(self, context: object) -> str:
            return self.values[self.name]

    class FindPackageShare:
        def __init__(self, package: str) -> None:
            self.package = package

        def perform(self, context: object) -> str:
            return get_package_share_directory(self.package)

    modules = {"launch": types.SimpleNamespace(LaunchDescription=lambda entities: list(entities)),
               "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=Recorder, OpaqueFunction=Recorder,
                                                       EmitEvent=Recorder, RegisterEventHandler=Recorder),
               "launch.events": types.SimpleNamespace(matches_action=lambda action: ("matches", action)),
               "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
               "launch_ros": types.SimpleNamespace(),
               "launch_ros.actions": types.SimpleNamespace(Node=Recorder, LifecycleNode=Recorder),
               "launch_ros.event_handlers": types.SimpleNamespace(OnStateTransition=Recorder),
               "launch_ros.events": types.SimpleNamespace(),
               "launch_ros.events.lifecycle": types.SimpleNamespace(ChangeState=Recorder),
               "launch_ros.substitutions": types.SimpleNamespace(FindPackageShare=FindPackageShare)}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    share = workspace / "install" / "psfusion_ros" / "share" / "psfusion_ros"
    entities = runpy.run_path(str(share / "launch" / "psfusion.launch.py"))["generate_launch_description"]()
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if e.args}
    LaunchConfiguration.values = dict(declared, namespace="cam0", checkpoint="/models/best_model.pth")
    (node,) = entities[-1].kwargs["function"](None)
    params_file, overrides = node.kwargs["parameters"]
    assert Path(params_file) == share / "config" / "psfusion.yaml" and Path(params_file).is_file()
    assert node.kwargs["namespace"] == "cam0" and node.kwargs["name"] == "psfusion"
    assert overrides == {"checkpoint": "/models/best_model.pth"}
    assert ("rgb/image_raw", declared["rgb_topic"]) in node.kwargs["remappings"]
    assert node.kwargs["executable"] == "psfusion_node"

    # lifecycle:=true: the managed node, configured at launch and activated once inactive (autostart, the default)
    from lifecycle_msgs.msg import Transition

    LaunchConfiguration.values = dict(declared, lifecycle="true", rgb_transport="compressed")
    managed, on_inactive, configure = entities[-1].kwargs["function"](None)
    assert managed.kwargs["executable"] == "psfusion_lifecycle_node" and managed.kwargs["name"] == "psfusion"
    assert managed.kwargs["parameters"][1] == {"rgb.transport": "compressed"}
    assert configure.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", managed),
                                               "transition_id": Transition.TRANSITION_CONFIGURE}
    handler = on_inactive.args[0].kwargs
    assert handler["target_lifecycle_node"] is managed and handler["goal_state"] == "inactive"
    assert handler["start_state"] == "configuring"  # not after a manager's deactivate
    assert handler["entities"][0].kwargs["event"].kwargs["transition_id"] == Transition.TRANSITION_ACTIVATE
    LaunchConfiguration.values = dict(declared, lifecycle="true", autostart="false")
    (managed,) = entities[-1].kwargs["function"](None)  # a lifecycle manager drives it
    assert managed.kwargs["executable"] == "psfusion_lifecycle_node"


def test_the_installed_node_starts_and_answers(workspace: Path, tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time, rclpy; from rcl_interfaces.srv import GetParameters\n"
        "p = subprocess.Popen(['psfusion_node', '--ros-args', '-p', 'allow_untrained:=true', '-p', 'device:=cpu',"
        " '-p', 'network_height:=64', '-p', 'network_width:=96'], stderr=subprocess.STDOUT, stdout=open("
        f"{str(tmp_path / 'node.log')!r}, 'w'))\n"
        "rclpy.init(args=[]); n = rclpy.create_node('probe'); c = n.create_client(GetParameters, "
        "'/psfusion/get_parameters')\n"
        "end = time.monotonic() + 120\n"
        "while not c.service_is_ready() and time.monotonic() < end and p.poll() is None: rclpy.spin_once(n, "
        "timeout_sec=0.1)\n"
        "f = c.call_async(GetParameters.Request(names=['network_height']))\n"
        "while not f.done() and time.monotonic() < end: rclpy.spin_once(n, timeout_sec=0.1)\n"
        "print('ANSWER', f.result().values[0].integer_value if f.done() else None); p.send_signal(2); "
        "sys.exit(p.wait(60))\n")
    script = tmp_path / "probe.py"
    script.write_text(code)
    env_prefix = "export PATH=\"$PWD/install/psfusion_ros/lib/psfusion_ros:$PATH\" && "
    result = _sourced(workspace, env_prefix + f"{sys.executable} {script}")
    log = (tmp_path / "node.log").read_text() if (tmp_path / "node.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log
    assert "ANSWER 64" in result.stdout, result.stdout + log
    assert "ready:" in log and "stopped cleanly" in log, log
