"""``psfusion-bag play``: a bag's messages, live, with their recorded stamps and timing, into other processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from psfusion_ros.io.bags import BagWriter, camera_info_message, header, image_message
from ros_harness import PARAMS_FILE, Harness, NodeProcess, stamp_of

BIN = Path(sys.executable).parent
EPOCH_NS = 1_700_000_000_000_000_000


def _bag(path: Path, pairs: int, rate_hz: float = 10.0, storage: str = "mcap") -> list[int]:
    rng = np.random.default_rng(0)
    stamps = []
    with BagWriter(path, storage) as bag:
        for k in range(pairs):
            t = EPOCH_NS + int(k * 1e9 / rate_hz)
            thermal = (20_000 + 3_000 * rng.random((48, 64))).astype(np.uint16)
            rgb = (rng.random((64, 96, 3)) * 255).astype(np.uint8)
            thermal_header = header(t - 1_000_000, "th")
            bag.write("/thermal/image_raw", image_message(thermal, "mono16", thermal_header), t - 1_000_000)
            bag.write("/thermal/camera_info", camera_info_message(64, 48, header(t - 1_000_000, "th")), t - 1_000_000)
            bag.write("/rgb/image_raw", image_message(rgb, "rgb8", header(t, "rgb")), t)
            stamps.append(t)
    return stamps


def _play(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "psfusion-bag"), "play", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_ten_second_bag_arrives_with_recorded_stamps_and_timing(tmp_path: Path) -> None:
    stamps = _bag(tmp_path / "drive", 100)  # 10 s at 10 Hz
    h = Harness()
    try:
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        got: dict[str, list[tuple[int, float]]] = {"thermal": [], "rgb": [], "info": []}
        h.node.create_subscription(Image, "/thermal/image_raw",
                                   lambda m: got["thermal"].append((stamp_of(m), time.monotonic())), qos)
        h.node.create_subscription(Image, "/rgb/image_raw",
                                   lambda m: got["rgb"].append((stamp_of(m), time.monotonic())), qos)
        h.node.create_subscription(CameraInfo, "/thermal/camera_info", lambda m: got["info"].append((0, 0.0)), qos)
        player = _play(str(tmp_path / "drive"), "--rate", "1", "--wait-for-subscribers", "60")
        assert h.spin_until(lambda: all(len(v) == 100 for v in got.values()), 180), player.stderr
        stdout, stderr = player.communicate(timeout=60)
    finally:
        h.close()
    assert player.returncode == 0, stderr
    assert [s for s, _ in got["rgb"]] == stamps  # recorded stamps, recorded order
    assert [s for s, _ in got["thermal"]] == [s - 1_000_000 for s in stamps] and len(got["info"]) == 100
    span = got["rgb"][-1][1] - got["rgb"][0][1]
    assert span >= 9.0  # the recorded 9.9 s were not compressed (a slow machine only stretches them)
    assert "played 300 messages" in stdout and "/rgb/image_raw 100" in stdout


def test_sqlite3_remap_start_and_duration(tmp_path: Path) -> None:
    stamps = _bag(tmp_path / "drive", 30, storage="sqlite3")  # 3 s
    h = Harness()
    try:
        got: list[int] = []
        h.node.create_subscription(Image, "/cam/color", lambda m: got.append(stamp_of(m)),
                                   QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        player = _play(str(tmp_path / "drive"), "--topics", "/rgb/image_raw", "--remap", "/rgb/image_raw:=/cam/color",
                       "--start", "1.0", "--duration", "1.0", "--rate", "4", "--wait-for-subscribers", "60")
        assert h.spin_until(lambda: player.poll() is not None, 120)  # receiving while it plays
        h.spin_until(lambda: len(got) >= 10, 30)
        stdout, stderr = player.communicate(timeout=60)
    finally:
        h.close()
    assert player.returncode == 0, stderr
    first = EPOCH_NS - 1_000_000  # the bag starts with the first thermal message
    expected = [s for s in stamps if first + 1_000_000_000 <= s < first + 2_000_000_000]
    assert got == expected and len(expected) == 10
    assert "/cam/color 10" in stdout


def test_loop_resets_the_node_sync_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    _bag(tmp_path / "drive", 20)  # 2 s, looped: stamps jump back 1.9 s (> the 1 s reset threshold)
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
                        "diagnostics.period": 0.3, "qos.reliability": "reliable"}, tmp_path / "node.log", PARAMS_FILE)
    h = Harness(ReliabilityPolicy.RELIABLE)
    player = None
    try:
        fused = h.record(Image, "fused/image")
        diagnostics = h.record(DiagnosticArray, "/diagnostics")
        assert h.wait_for_node(120), node.output()
        player = _play(str(tmp_path / "drive"), "--loop", "--wait-for-subscribers", "60")

        def resets() -> int:
            counts = [int({kv.key: kv.value for kv in s.values}["sync resets"]) for a in diagnostics for s in a.status]
            return max(counts, default=0)

        assert h.spin_until(lambda: resets() >= 1, 120), node.output()
        after = len(fused)
        assert h.spin_until(lambda: len(fused) > after + 1, 120), node.output()  # fusing after the loop
        player.send_signal(signal.SIGINT)
        stdout, stderr = player.communicate(timeout=60)
        assert player.returncode == 0, stderr
        assert "stopped" in stdout and "loops" in stdout and "Traceback" not in stderr
    finally:
        h.close()
        if player is not None and player.poll() is None:
            player.kill()
        assert node.interrupt() == 0, node.output()


def test_a_compressed_drive_fuses_live_through_the_player(tmp_path: Path) -> None:
    """JPEG RGB + 16-bit PNG thermal on image_transport's …/compressed topics, played by ``psfusion-bag play`` into a
    node with ``*.transport: compressed``: every published image is one of the drive's frames, none was dropped as
    undecodable."""
    from psfusion_ros.io.bags import compressed_image_message

    rng = np.random.default_rng(1)
    stamps = []
    with BagWriter(tmp_path / "drive") as bag:
        for k in range(8):
            t = EPOCH_NS + k * 200_000_000
            thermal = (20_000 + 3_000 * rng.random((48, 64))).astype(np.uint16)
            rgb = (rng.random((64, 96, 3)) * 255).astype(np.uint8)
            bag.write("/thermal/image_raw/compressed", compressed_image_message(thermal, "png", header(t, "th")), t)
            bag.write("/rgb/image_raw/compressed", compressed_image_message(rgb, "jpeg", header(t, "rgb")), t)
            stamps.append(t)
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
                        "diagnostics.period": 0.3, "qos.reliability": "reliable", "thermal.transport": "compressed",
                        "rgb.transport": "compressed", "qos.depth": 16}, tmp_path / "node.log", PARAMS_FILE)
    h = Harness(ReliabilityPolicy.RELIABLE)
    player = None
    try:
        fused = h.record(Image, "fused/image")
        diagnostics = h.record(DiagnosticArray, "/diagnostics")
        # Every count below compares what the node sent with what the harness got: the harness must hear the node's
        # publishers before the first frame exists (on a loaded machine discovery can lag the node's start-up).
        assert h.spin_until(lambda: h.node.count_publishers("fused/image") > 0
                            and h.node.count_publishers("/diagnostics") > 0, 120), node.output()
        player = _play(str(tmp_path / "drive"), "--wait-for-subscribers", "120")
        stdout, stderr = player.communicate(timeout=300)
        assert player.returncode == 0, stderr
        assert "/rgb/image_raw/compressed 8" in stdout and "/thermal/image_raw/compressed 8" in stdout, stdout

        def last(key: str) -> int:
            values = [int({kv.key: kv.value for kv in s.values}.get(key, 0)) for a in diagnostics for s in a.status]
            return values[-1] if values else 0

        assert h.spin_until(lambda: last("rgb received") == 8 and last("thermal received") == 8
                            and len(fused) >= 1 and last("frames published") == len(fused), 120), node.output()
    finally:
        h.close()
        if player is not None and player.poll() is None:
            player.kill()
        assert node.interrupt() == 0, node.output()
    assert {stamp_of(m) for m in fused} <= set(stamps)
    assert last("rgb decode errors") == last("thermal decode errors") == 0
