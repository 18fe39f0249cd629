"""What ROS itself does with node names and parameter files: one node per camera pair, each in its namespace, each
reading the same kind of file the package ships (keyed ``/**/psfusion``). Real processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import GetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from psfusion_ros.pipeline.config import write_params_file
from psfusion_ros.pipeline.parameters import render_params_yaml
from ros_harness import Harness, NodeProcess, stamp_of

EPOCH_NS = 1_700_000_000_000_000_000


def _get(h: Harness, node: str, names: list[str]) -> list:
    response = h.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names))
    return [v.integer_value if v.type == 2 else v.double_value if v.type == 3 else v.string_value
            for v in response.values]


def test_the_package_layout_applies_in_any_namespace_and_the_bare_name_does_not(tmp_path: Path) -> None:
    assert render_params_yaml().count("/**/psfusion:") == 1  # the shipped file uses the wildcard key
    values = {"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
              "thermal": {"mode": "fixed", "fixed_max": 9000.0}}
    wildcard = write_params_file(tmp_path / "rig.yaml", {"allow_untrained": True, "device": "cpu",
                                                         "network_height": 64, "network_width": 96,
                                                         "thermal.mode": "fixed", "thermal.fixed_max": 9000.0})
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"psfusion": {"ros__parameters": values}}))
    ok = NodeProcess({}, tmp_path / "ok.log", wildcard, ros_args=["-r", "__ns:=/cam0"])
    ignored = NodeProcess({}, tmp_path / "ignored.log", bare, ros_args=["-r", "__ns:=/cam9"])
    h = Harness()
    try:
        assert ok.wait_for_output("ready:"), ok.output()
        assert _get(h, "/cam0/psfusion", ["network_height", "thermal.mode", "thermal.fixed_max"]) == [64, "fixed",
                                                                                                       9000.0]
        # ROS matches 'psfusion:' only to /psfusion: under /cam9 the file is dropped, so the node sees no checkpoint
        assert ignored.proc.wait(timeout=120) == 2
        assert "no checkpoint" in ignored.output().strip().splitlines()[-1]
    finally:
        h.close()
        assert ok.interrupt() == 0, ok.output()
        ignored.stop()


def _publish_pair(h: Harness, pubs: dict, k: int, rgb_size: tuple[int, int]) -> None:
    rng = np.random.default_rng(k)
    thermal = (20_000 + 3_000 * rng.random((48, 64))).astype(np.uint16)
    rgb = (rng.random(rgb_size + (3,)) * 255).astype(np.uint8)
    stamp = EPOCH_NS + k * 100_000_000
    pubs["thermal"].publish(h.image(thermal, "mono16", stamp, "th"))
    pubs["rgb"].publish(h.image(rgb, "rgb8", stamp, "rgb"))


def test_two_camera_pairs_side_by_side(tmp_path: Path) -> None:
    nodes, pubs, fused = {}, {}, {}
    sizes = {"cam0": ((64, 96), (96, 128)), "cam1": ((96, 128), (64, 96))}  # (network, RGB frame)
    for ns, (net, _) in sizes.items():
        params = write_params_file(tmp_path / f"{ns}.yaml", {
            "allow_untrained": True, "device": "cpu", "network_height": net[0], "network_width": net[1],
            "qos.reliability": "reliable", "diagnostics.period": 0.3})
        nodes[ns] = NodeProcess({}, tmp_path / f"{ns}.log", params, ros_args=["-r", f"__ns:=/{ns}"])
    h = Harness()
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for ns in sizes:
            pubs[ns] = {c: h.node.create_publisher(Image, f"/{ns}/{c}/image_raw", qos) for c in ("thermal", "rgb")}
            fused[ns] = h.record(Image, f"/{ns}/fused/image")
        diagnostics = h.record(DiagnosticArray, "/diagnostics")
        assert h.spin_until(lambda: all(p.get_subscription_count() for d in pubs.values() for p in d.values()), 120)
        for k in range(200):  # feed both pairs until each node has fused two of its own
            if all(len(f) >= 2 for f in fused.values()):
                break
            before = {ns: len(f) for ns, f in fused.items()}
            for ns, (_, rgb_size) in sizes.items():
                _publish_pair(h, pubs[ns], k, rgb_size)
            h.spin_until(lambda before=before: all(len(fused[ns]) > before[ns] for ns in sizes), 2.0)
        for ns, (_, rgb_size) in sizes.items():
            assert len(fused[ns]) >= 2, nodes[ns].output()
            assert all((m.height, m.width) == rgb_size for m in fused[ns])  # each node its own camera
            assert all(stamp_of(m) >= EPOCH_NS for m in fused[ns])

        def reported(ns: str, net: tuple[int, int]) -> bool:
            return any(s.name == f"{ns}/psfusion: fusion" and
                       {kv.key: kv.value for kv in s.values}["network size"] == f"{net[0]}x{net[1]}"
                       for a in diagnostics for s in a.status)

        assert h.spin_until(lambda: all(reported(ns, net) for ns, (net, _) in sizes.items()), 30)
        assert _get(h, "/cam1/psfusion", ["network_height"]) == [96]
    finally:
        h.close()
        for node in nodes.values():
            assert node.interrupt() == 0, node.output()
