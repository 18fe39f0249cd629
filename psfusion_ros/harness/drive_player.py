"""Plays a synthetic drive into a running psfusion_node over ROS and records what comes back.

Used by ``make demo`` and ``psfusion-bench soak``: a real publisher/subscriber pair in its own rclpy
context, so the node is exercised exactly as a camera driver and a consumer would.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from psfusion_ros.io.image_codec import decode_image, fill_image


@dataclass
class Received:
    """Bounded record of the node's outputs."""

    fused: deque = field(default_factory=lambda: deque(maxlen=4))
    masks: deque = field(default_factory=lambda: deque(maxlen=4))
    colors: deque = field(default_factory=lambda: deque(maxlen=4))
    diagnostics: deque = field(default_factory=lambda: deque(maxlen=4))
    fused_count: int = 0
    latency_ms: list[float] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)


class DrivePlayer:
    def __init__(self, rgb_size: tuple[int, int], thermal_size: tuple[int, int], frames: int = 12,
                 seed: int = 0) -> None:
        self.rgb_size, self.thermal_size = rgb_size, thermal_size
        self.thermal_to_rgb = misalignment_homography(rgb_size, thermal_size)
        self.scenes = [synthetic_frame(t, *rgb_size, seed=seed) for t in range(frames)]
        self.thermal = [thermal_counts(s, thermal_size, self.thermal_to_rgb) for s in self.scenes]
        self.sent_stamps: dict[int, int] = {}  # stamp_ns → scene index
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = Node("psfusion_drive_player", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.pub_thermal = self.node.create_publisher(Image, "thermal/image_raw", qos_profile_sensor_data)
        self.pub_rgb = self.node.create_publisher(Image, "rgb/image_raw", qos_profile_sensor_data)
        self.received = Received()
        self.node.create_subscription(Image, "fused/image", self._on_fused, 10)
        r = self.received
        self.node.create_subscription(Image, "segmentation/mask", lambda m: r.masks.append(m), 10)
        self.node.create_subscription(Image, "segmentation/color", lambda m: r.colors.append(m), 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: r.diagnostics.append(m), 10)

    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_fused(self, msg: Image) -> None:
        r = self.received
        r.fused.append(msg)
        r.fused_count += 1
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        r.stamps.append(stamp)
        if len(r.latency_ms) < 100_000:
            r.latency_ms.append((self._now_ns() - stamp) / 1e6)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.02, max(deadline - time.monotonic(), 0.0)))

    def wait_for_node(self, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True) -> bool:
        """True once the node subscribes to both camera topics; False on timeout or if ``alive()`` fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.pub_thermal.get_subscription_count() and self.pub_rgb.get_subscription_count():
                self.spin_for(0.5)  # let the node's readers match ours too
                return True
            self.spin_for(0.1)
        return False

    def publish(self, index: int) -> int:
        """Publish scene ``index`` (modulo the drive): thermal first, RGB 2 ms later, as real cameras drift."""
        k = index % len(self.scenes)
        stamp = self._now_ns()
        thermal = fill_image(Image(), self.thermal[k], "mono16")
        thermal.header.stamp.sec, thermal.header.stamp.nanosec = divmod(stamp - 2_000_000, 1_000_000_000)
        thermal.header.frame_id = "thermal_optical"
        rgb = fill_image(Image(), self.scenes[k].visible, "rgb8")
        rgb.header.stamp.sec, rgb.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        rgb.header.frame_id = "rgb_optical"
        self.pub_thermal.publish(thermal)
        self.pub_rgb.publish(rgb)
        if len(self.sent_stamps) < 100_000:
            self.sent_stamps[stamp] = k
        return stamp

    def lockstep(self, count: int, first_timeout: float = 120.0) -> list[float]:
        """Seconds between ``count`` + 1 consecutive outputs while pairs are fed one at a time: what this machine
        sustains, measured before choosing a playback rate. ApproximateTime emits a pair when the next frame
        arrives, so each new pair releases the previous one; a pair lost in (best-effort) transport releases
        nothing, so after a patience of 5x the gaps seen so far (10 s before the first output, which includes the
        warm-up, for up to ``first_timeout``) another pair is published."""
        gaps: list[float] = []
        target = self.received.fused_count + 1
        index, last = 0, None
        self.publish(index)
        give_up = time.monotonic() + first_timeout + 60.0 * count
        while len(gaps) < count and time.monotonic() < give_up:
            index += 1
            self.publish(index)
            # before the first output nothing is known: re-send every 10 s (a lost frame must not cost minutes)
            patience = 10.0 if last is None else max(5 * float(np.median(gaps or [1.0])), 2.0)
            deadline = time.monotonic() + patience
            while self.received.fused_count < target and time.monotonic() < deadline:
                self.spin_for(0.02)
            if self.received.fused_count >= target:
                now = time.monotonic()
                if last is not None:
                    gaps.append(now - last)
                last, target = now, self.received.fused_count + 1
        return gaps

    def play(self, count: int, rate_hz: float) -> None:
        """Publish ``count`` pairs at ``rate_hz``, spinning in between so outputs are received."""
        period = 1.0 / rate_hz
        start = time.monotonic()
        for i in range(count):
            self.publish(i)
            self.spin_for(max(start + (i + 1) * period - time.monotonic(), 0.0))

    def set_parameter(self, node: str, name: str, value: object, timeout: float = 30.0) -> bool:
        """``ros2 param set`` through the node's SetParameters service; True when the node accepted it."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node}/set_parameters")
        try:
            deadline = time.monotonic() + timeout
            while not client.service_is_ready() and time.monotonic() < deadline:
                self.spin_for(0.05)
            future = client.call_async(SetParameters.Request(parameters=[Parameter(name, value=value)
                                                                         .to_parameter_msg()]))
            while not future.done() and time.monotonic() < deadline:
                self.spin_for(0.02)
            return bool(future.done() and future.result().results[0].successful)
        finally:
            self.node.destroy_client(client)

    def last_diagnostics(self) -> dict[str, str]:
        for array in reversed(self.received.diagnostics):
            for status in array.status:
                if status.name.endswith(": fusion"):
                    values = {kv.key: kv.value for kv in status.values}
                    values["level"] = str(int.from_bytes(status.level, "little") if isinstance(status.level, bytes)
                                          else status.level)
                    values["message"] = status.message
                    return values
        return {}

    def _complete(self, fused: Image) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None] | None:
        r = self.received
        key = (fused.header.stamp.sec, fused.header.stamp.nanosec)
        mask = next((m for m in reversed(r.masks) if (m.header.stamp.sec, m.header.stamp.nanosec) == key), None)
        if mask is None:
            return None
        color = next((c for c in reversed(r.colors) if (c.header.stamp.sec, c.header.stamp.nanosec) == key), None)
        index = self.sent_stamps.get(key[0] * 1_000_000_000 + key[1], 0)
        return (index, np.array(decode_image(fused)), np.array(decode_image(mask)),
                None if color is None else np.array(decode_image(color)))

    def outputs(self) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
        """(scene index, fused RGB, class ids, coloured mask) of each recent complete output, oldest first."""
        return [o for o in map(self._complete, list(self.received.fused)) if o is not None]

    def last_output(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """The newest output, or None while its mask has not arrived."""
        return self._complete(self.received.fused[-1]) if self.received.fused else None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
