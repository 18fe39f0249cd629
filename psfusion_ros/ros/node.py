"""``psfusion_node``: synchronize thermal + RGB, fuse with PSFusion, publish fused image, masks, diagnostics.

The ROS layer only converts messages, schedules and publishes; all processing is the ROS-free
:class:`~psfusion_ros.pipeline.FusionPipeline`. Callbacks decode (zero-copy where possible) and feed the
ApproximateTime synchronizer; completed pairs go to a one-slot mailbox that a worker thread drains, so a
slow network drops stale pairs instead of queueing them.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from psfusion_ros.model.checkpoint import CheckpointError
from psfusion_ros.pipeline.color import colorize
from psfusion_ros.pipeline.mailbox import LatestMailbox
from psfusion_ros.pipeline.registration import CameraModel
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.ros import params as P
from psfusion_ros.ros.health import HealthMonitor
from psfusion_ros.ros.image_codec import ImageDecodeError, decode_image, fill_image, to_rgb, to_thermal

THERMAL, RGB = 0, 1
INPUT_NAMES = ("thermal", "rgb")


def stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class PSFusionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(P.NODE_NAME, **kwargs)
        for p in P.PARAMS:
            self.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description))
        self.values = {p.name: self.get_parameter(p.name).value for p in P.PARAMS}
        self.pipeline = P.pipeline_from_params(self.values)  # ConfigError / CheckpointError: caller reports
        v = self.values
        if not v["checkpoint"]:
            self.get_logger().warn("no checkpoint: running seeded UNTRAINED weights (allow_untrained=true)")

        max_interval = float(v["sync.max_interval"])
        self.sync = ApproximateTimeSync(2, int(v["sync.queue_size"]), int(max_interval * 1e9) or None)
        self._thermal_offset_ns = int(float(v["sync.thermal_offset"]) * 1e9)
        self._sync_lock = threading.Lock()
        self.mailbox: LatestMailbox[tuple] = LatestMailbox()
        self.health = HealthMonitor(INPUT_NAMES, float(v["diagnostics.stale_timeout"]),
                                    float(v["diagnostics.expected_rate"]))
        self._camera_info: dict[int, CameraInfo] = {}
        self._log_times: dict[str, float] = {}

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=int(v["qos.depth"]),
            reliability=ReliabilityPolicy.BEST_EFFORT if v["qos.reliability"] == "best_effort"
            else ReliabilityPolicy.RELIABLE,
        )
        self.create_subscription(Image, "thermal/image_raw", lambda m: self._on_image(THERMAL, m), qos,
                                 event_callbacks=self._qos_events("thermal/image_raw"))
        self.create_subscription(Image, "rgb/image_raw", lambda m: self._on_image(RGB, m), qos,
                                 event_callbacks=self._qos_events("rgb/image_raw"))
        self.create_subscription(CameraInfo, "thermal/camera_info", lambda m: self._on_info(THERMAL, m), qos)
        self.create_subscription(CameraInfo, "rgb/camera_info", lambda m: self._on_info(RGB, m), qos)

        self.pub_fused = self.create_publisher(Image, "fused/image", 5)
        self.pub_mask = self.create_publisher(Image, "segmentation/mask", 5)
        self.pub_color = self.create_publisher(Image, "segmentation/color", 5) if v["publish.color"] else None
        self.pub_overlay = self.create_publisher(Image, "fused/overlay", 5) if v["publish.overlay"] else None
        self.pub_info = self.create_publisher(CameraInfo, "fused/camera_info", 5) if v["publish.camera_info"] else None
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(v["diagnostics.period"]), self._publish_diagnostics)

        self.health.started(time.monotonic())
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="psfusion-inference", daemon=True)
        self._worker.start()
        p = self.pipeline
        self.get_logger().info(
            f"ready: {v['backend']} on {p.device} ({v['precision']}), network {p.network_size[0]}x"
            f"{p.network_size[1]}, registration {p.registration.mode if p.registration else 'none'}, "
            f"thermal {v['thermal.mode']}, QoS {v['qos.reliability']} depth {v['qos.depth']}; "
            f"subscribed to {self.resolve_topic_name('thermal/image_raw')} and "
            f"{self.resolve_topic_name('rgb/image_raw')}"
        )

    # -- helpers ----------------------------------------------------------------------------------
    def _warn_throttled(self, key: str, text: str, period_s: float = 5.0) -> None:
        now = time.monotonic()
        if now - self._log_times.get(key, -1e9) >= period_s:
            self._log_times[key] = now
            self.get_logger().warn(text)

    def _qos_events(self, topic: str) -> SubscriptionEventCallbacks:
        def incompatible(info: Any) -> None:
            text = (f"{topic}: a publisher's QoS is incompatible with this subscription "
                    f"({info.last_policy_kind}); try qos.reliability:=best_effort")
            self.health.input_error(topic.split("/")[0], text)
            self._warn_throttled(f"qos-{topic}", text)

        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    # -- callbacks (never wait for the network) ------------------------------------------------------
    def _on_info(self, index: int, msg: CameraInfo) -> None:
        first = index not in self._camera_info
        self._camera_info[index] = msg
        registration = self.pipeline.registration
        if registration is not None and registration.mode == "camera_info":
            try:
                cam = CameraModel.from_camera_info(msg)
            except ValueError as exc:
                self.health.input_error(INPUT_NAMES[index], f"camera_info: {exc}")
                return
            registration.set_cameras(cam if index == THERMAL else None, cam if index == RGB else None)
        if first:
            self.get_logger().info(f"{INPUT_NAMES[index]} camera_info received ({msg.width}x{msg.height})")

    def _on_image(self, index: int, msg: Image) -> None:
        name = INPUT_NAMES[index]
        self.health.input_arrived(name, time.monotonic())
        try:
            pixels = decode_image(msg)
            frame = to_thermal(pixels, msg.encoding) if index == THERMAL else to_rgb(pixels, msg.encoding)
        except ImageDecodeError as exc:
            self.health.input_error(name, str(exc))
            self._warn_throttled(f"decode-{name}", f"{name} image dropped: {exc}")
            return
        stamp = stamp_ns(msg.header.stamp) + (self._thermal_offset_ns if index == THERMAL else 0)
        with self._sync_lock:
            resets = self.sync.stats.resets
            pairs = self.sync.push(index, stamp, (msg.header, frame))
            if self.sync.stats.resets != resets:
                self.get_logger().warn(f"{name} stamps jumped back by more than 1 s (bag loop?): "
                                       "synchronizer reset")
                if self.pipeline.thermal is not None:
                    self.pipeline.thermal.reset()
        for pair in pairs:
            self.mailbox.put(pair)

    # -- worker -------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            pair = self.mailbox.get(timeout=0.2)
            if pair is None:
                continue
            (_, (_, thermal)), (_, (header, rgb)) = pair
            try:
                result = self.pipeline(rgb, thermal)
            except ValueError as exc:
                self.health.processing_error(f"pair skipped: {exc}", level=1)
                self._warn_throttled("pair", f"pair skipped: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - the node must survive any inference failure
                self.health.processing_error(f"inference failed: {type(exc).__name__}: {exc}")
                self._warn_throttled("inference", f"inference failed: {type(exc).__name__}: {exc}")
                continue
            if self._stopping.is_set() or not rclpy.ok():
                break
            self._publish(header, result)

    def _publish(self, header: Any, result: Any) -> None:
        if not header.frame_id and self.values["rgb_frame_id"]:
            header.frame_id = self.values["rgb_frame_id"]
        self.pub_fused.publish(fill_image(Image(header=header), result.fused, "rgb8"))
        self.pub_mask.publish(fill_image(Image(header=header), result.class_ids, "mono8"))
        color = None
        if self.pub_color is not None and self.pub_color.get_subscription_count() > 0:
            color = colorize(result.class_ids)
            self.pub_color.publish(fill_image(Image(header=header), color, "rgb8"))
        if self.pub_overlay is not None and self.pub_overlay.get_subscription_count() > 0:
            color = colorize(result.class_ids) if color is None else color
            alpha = float(self.values["publish.overlay_alpha"])
            blended = (result.fused * (1 - alpha) + color * alpha).astype(np.uint8)
            self.pub_overlay.publish(fill_image(Image(header=header), blended, "rgb8"))
        info = self._camera_info.get(RGB)
        if self.pub_info is not None and info is not None:
            info.header = header
            self.pub_info.publish(info)
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns(header.stamp)) / 1e6
        self.health.processed(time.monotonic(), latency_ms, result.timing_ms)

    # -- diagnostics --------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        stats = self.sync.stats
        p = self.pipeline
        extra = {
            "matched pairs": str(stats.matched),
            "thermal dropped by sync": str(stats.dropped[THERMAL]),
            "rgb dropped by sync": str(stats.dropped[RGB]),
            "sync resets": str(stats.resets),
            "stale pairs skipped": str(self.mailbox.replaced),
            "backend": self.values["backend"],
            "device": str(p.device),
            "precision": self.values["precision"],
            "network size": f"{p.network_size[0]}x{p.network_size[1]}",
        }
        snap = self.health.snapshot(time.monotonic(), extra)
        status = DiagnosticStatus(
            level=bytes([snap.level]), name=f"{self.get_name()}: fusion", message=snap.message,
            hardware_id=str(p.device), values=[KeyValue(key=k, value=val) for k, val in snap.values.items()],
        )
        header = Header(stamp=self.get_clock().now().to_msg())
        self.pub_diag.publish(DiagnosticArray(header=header, status=[status]))

    def close(self) -> None:
        """Stop the worker (waits for the frame in flight)."""
        self._stopping.set()
        self.mailbox.close()
        self._worker.join(timeout=30.0)


def main(args: list[str] | None = None) -> int:
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - rcl reports bad --ros-args as RCLError
        reason = str(exc).split(", at /")[0]
        print(f"psfusion_node: error: invalid ROS arguments: {reason}", file=sys.stderr)
        return 2
    try:
        node = PSFusionNode()
    except (P.ConfigError, CheckpointError, ValueError) as exc:
        print(f"psfusion_node: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    print("psfusion_node: stopped cleanly", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
