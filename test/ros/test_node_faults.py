"""A fault schedule played into a real node: good traffic, a fault, good traffic, the next fault ... The node never
exits, /diagnostics names each fault with the input and what happened (WARN or ERROR), and after it the node fuses
again and reports OK. Every wait is a condition with a generous bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ros_harness import PARAMS_FILE, Feeder, Harness, NodeProcess

RGB, THERMAL = (64, 96), (48, 72)
OK, WARN, ERROR = 0, 1, 2
EPOCH_NS = 1_700_000_000_000_000_000
AHEAD_NS = 1000 * 1_000_000_000


class Schedule:
    def __init__(self, h: Harness, node: NodeProcess) -> None:
        self.h, self.node = h, node
        self.fused = h.record(Image, "fused/image")
        self.diagnostics = h.record(DiagnosticArray, "/diagnostics", depth=100)
        self.info = {name: h.node.create_publisher(CameraInfo, f"{name}/camera_info", 10)
                     for name in ("thermal", "rgb")}
        self.clock = EPOCH_NS
        rng = np.random.default_rng(1)
        self.thermal = (20_000 + 3_000 * rng.random(THERMAL)).astype(np.uint16)
        self.rgb = (rng.random(RGB + (3,)) * 255).astype(np.uint8)

    # -- traffic ------------------------------------------------------------------------------------------
    def camera_info(self, name: str, size: tuple[int, int], k: list[float] | None = None,
                    d: list[float] | None = None) -> None:
        h, w = size
        info = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
        info.k = k or [0.9 * w, 0.0, w / 2, 0.0, 0.9 * w, h / 2, 0.0, 0.0, 1.0]
        info.d = d if d is not None else [0.0] * 5
        self.info[name].publish(info)

    def pair(self, thermal_ns: int = 0, stamp: int | None = None, thermal: np.ndarray | None = None,
             encoding: str = "mono16") -> tuple[Image, Image]:
        self.clock += 100_000_000
        t = self.clock if stamp is None else stamp
        self.camera_info("thermal", THERMAL)
        self.camera_info("rgb", RGB)
        frame = self.thermal if thermal is None else thermal
        return (self.h.image(frame, encoding, t + thermal_ns - 1_000_000, "thermal_optical"),
                self.h.image(self.rgb, "rgb8", t, "rgb_optical"))

    def feeder(self, make: Callable[[int], tuple[Image, Image]] | None = None) -> Feeder:
        return Feeder(self.h, self.fused, make or (lambda i: self.pair()))

    # -- what the node says ---------------------------------------------------------------------------------
    def statuses(self, start: int) -> list:
        return [s for a in self.diagnostics[start:] for s in a.status if s.name == "psfusion: fusion"]

    def wait_status(self, start: int, level: int, *texts: str, timeout: float = 60.0) -> bool:
        def seen() -> bool:
            return any(s.level == bytes([level]) and all(t in s.message for t in texts) for s in self.statuses(start))

        return self.h.spin_until(seen, timeout)

    def recovers(self) -> None:
        """Good traffic until a new fused image and an OK status after it."""
        count = len(self.fused)
        feeder = self.feeder()
        assert feeder.until(lambda: len(self.fused) > count, patience=0.5), self.node.output()
        mark = len(self.diagnostics)
        assert feeder.until(lambda: any(s.level == bytes([OK]) for s in self.statuses(mark)), patience=0.5), \
            [s.message for s in self.statuses(mark)]
        assert self.node.proc.poll() is None

    def fault(self, send: Callable[[], None], level: int, *texts: str) -> None:
        """Repeat ``send`` (best effort may lose a message) until the diagnostics report it, then recover."""
        mark = len(self.diagnostics)
        for _ in range(200):
            send()
            if self.wait_status(mark, level, *texts, timeout=0.3):
                break
        assert self.wait_status(mark, level, *texts, timeout=1.0), (texts, [s.message for s in self.statuses(mark)])
        self.recovers()


def test_fault_schedule(tmp_path: Path) -> None:
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
                        "registration.mode": "camera_info", "registration.translation": [0.05, 0.0, 0.0],
                        "diagnostics.period": 0.2, "diagnostics.stale_timeout": 2.0},
                       tmp_path / "node.log", PARAMS_FILE)
    h = Harness(ReliabilityPolicy.BEST_EFFORT)
    s = Schedule(h, node)
    try:
        assert h.wait_for_node(120), node.output()
        s.recovers()

        def odd_yuv() -> None:
            msg = h.image(np.zeros((4, 7, 2), np.uint8).reshape(4, 14)[:, :14], "mono8", s.clock, "rgb")
            msg.encoding, msg.width, msg.step = "yuv422", 7, 14
            h.pub_rgb.publish(msg)

        s.fault(odd_yuv, WARN, "rgb: image dropped:", "yuv422 packs two pixels")

        def unknown_encoding() -> None:
            msg = h.image(np.zeros((8, 8), np.uint8), "mono8", s.clock, "th")
            msg.encoding = "bayer_rggb8"
            h.pub_thermal.publish(msg)

        s.fault(unknown_encoding, WARN, "thermal: image dropped: unsupported encoding 'bayer_rggb8'")

        def truncated() -> None:
            msg = h.image(s.rgb, "rgb8", s.clock, "rgb")
            msg.data = msg.data[:100]
            h.pub_rgb.publish(msg)

        s.fault(truncated, WARN, "rgb: image dropped: truncated data")

        nan_thermal = np.full(THERMAL, np.nan, np.float32)
        blank = iter(range(10**6))
        s.fault(lambda: s.feeder(lambda i: s.pair(thermal=nan_thermal, encoding="32FC1") if next(blank) % 2 == 0
                                 else s.pair()).send(), WARN, "thermal input blank")

        nan_k = [float("nan"), 0.0, 36.0, 0.0, 60.0, 24.0, 0.0, 0.0, 1.0]
        s.fault(lambda: s.camera_info("thermal", THERMAL, k=nan_k), WARN, "thermal: camera_info rejected")
        s.fault(lambda: s.camera_info("rgb", RGB, d=[0.1, 0.0, 0.0]), WARN, "rgb: camera_info rejected",
                "distortion D")

        s.fault(lambda: s.feeder(lambda i: s.pair(stamp=1_000_000)).send(), WARN, "thermal: stamp is 0")
        s.fault(lambda: s.feeder(lambda i: s.pair(stamp=time.time_ns() + AHEAD_NS)).send(), WARN, "in the future")

        s.fault(lambda: s.feeder(lambda i: s.pair(thermal_ns=AHEAD_NS)).send(), ERROR,
                "both cameras deliver but no pair matched", "stamps 999.999 s apart")

        def rgb_only() -> None:
            _, rgb = s.pair()
            h.pub_rgb.publish(rgb)

        s.fault(rgb_only, WARN, "thermal stale for")

        looped = iter(range(10**6))
        s.fault(lambda: s.feeder(lambda i: s.pair(stamp=EPOCH_NS + 100_000_000 * next(looped))).send(), WARN,
                "stamps jumped back")
        assert node.proc.poll() is None
    finally:
        h.close()
        code = node.interrupt()
    assert code == 0, node.output()
    assert "Traceback" not in node.output()


def test_an_idle_node_is_never_ok(tmp_path: Path) -> None:
    """With a long stale timeout (or in its first second) an idle node used to publish OK "fusing at 0.0 Hz" with
    nothing published: OK must mean "fused recently"."""
    node = NodeProcess({"allow_untrained": True, "device": "cpu", "network_height": 64, "network_width": 96,
                        "diagnostics.period": 0.2, "diagnostics.stale_timeout": 3600.0},
                       tmp_path / "node.log", PARAMS_FILE)
    h = Harness(ReliabilityPolicy.BEST_EFFORT)
    s = Schedule(h, node)
    try:
        assert h.wait_for_node(120), node.output()
        assert h.spin_until(lambda: len(s.statuses(0)) >= 5, 60), node.output()
        idle = s.statuses(0)
        assert all(st.level == bytes([WARN]) and st.message == "nothing fused yet" for st in idle), \
            [(st.level, st.message) for st in idle]
        assert all({kv.key: kv.value for kv in st.values}["frames published"] == "0" for st in idle)
        s.recovers()  # pairs: OK once something is fused
    finally:
        h.close()
        code = node.interrupt()
    assert code == 0, node.output()
