"""Real rclpy across processes (the private DDS domain is set in conftest.py), bounded waits, everything stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from psfusion_ros.harness.node_process import NodeProcess  # noqa: F401  (re-exported for the fixtures)
from psfusion_ros.io.image_codec import fill_image

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "psfusion.yaml"


class Harness:
    """A test-side node that publishes camera streams and records everything the node publishes."""

    def __init__(self, reliability: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT) -> None:
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = Node("psfusion_test_harness", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=10, reliability=reliability)
        self.pub_thermal = self.node.create_publisher(Image, "thermal/image_raw", qos)
        self.pub_rgb = self.node.create_publisher(Image, "rgb/image_raw", qos)
        self.received: dict[str, list] = {}

    def record(self, msg_type: type, topic: str, depth: int = 50) -> list:
        store = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, store.append, depth)
        return store

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def wait_for_node(self, timeout: float = 60.0) -> bool:
        return self.spin_until(
            lambda: self.pub_thermal.get_subscription_count() > 0 and self.pub_rgb.get_subscription_count() > 0,
            timeout,
        )

    def image(self, pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
        msg = fill_image(Image(), pixels, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame_id
        return msg

    def call(self, srv_type: type, name: str, request: object, timeout: float = 30.0) -> object:
        """Call a service of the node under test (bounded wait); returns the response."""
        client = self.node.create_client(srv_type, name)
        try:
            assert self.spin_until(client.service_is_ready, timeout), f"service {name} not available"
            future = client.call_async(request)
            assert self.spin_until(future.done, timeout), f"service {name} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameter(self, node: str, name: str, value: object) -> object:
        """``ros2 param set``: the SetParametersResult (successful, reason)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(SetParameters, f"{node}/set_parameters", request).results[0]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def stamp_of(msg: object) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec  # type: ignore[attr-defined]


class Feeder:
    """Feeds pairs into the node until a condition holds: one pair, then wait for a new output (or a patience,
    after which the next pair goes out: best-effort transport may lose one), never a fixed sleep."""

    def __init__(self, harness: Harness, outputs: list, make_pair: Callable[[int], tuple[Image, Image]]) -> None:
        self.h, self.outputs, self.make_pair = harness, outputs, make_pair
        self.index = 0
        self.sent: list[Image] = []

    def send(self) -> Image:
        thermal, rgb = self.make_pair(self.index)
        self.index += 1
        self.h.pub_thermal.publish(thermal)
        self.h.pub_rgb.publish(rgb)
        self.sent.append(rgb)
        return rgb

    def until(self, condition: Callable[[], bool], timeout: float = 120.0, patience: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            before = len(self.outputs)
            self.send()
            self.h.spin_until(lambda before=before: len(self.outputs) > before or condition(),
                              min(patience, max(deadline - time.monotonic(), 0.0)))
        return condition()
