"""``psfusion_node``: synchronize thermal + RGB, fuse with PSFusion, publish fused image, masks, diagnostics.

The ROS layer only converts messages, schedules and publishes; all processing is the ROS-free pipeline that
:func:`~psfusion_ros.pipeline.builder.build_pipeline` assembles from the parameters. Callbacks decode
(zero-copy where possible) and feed the ApproximateTime synchronizer; completed pairs go to a one-slot mailbox
that a worker thread drains, so a slow network drops stale pairs instead of queueing them. No exception
raised while handling one message leaves its callback: it becomes a diagnostics entry and a throttled log line.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from psfusion_ros.errors import ConfigError, EngineError, FrameError, ImageDecodeError, PSFusionError, one_line
from psfusion_ros.io.compressed import encode_compressed
from psfusion_ros.io.image_codec import decode_rgb, decode_thermal, fill_image, stamp_ns
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.color import colorize
from psfusion_ros.pipeline.config import NodeConfig, PipelineConfig
from psfusion_ros.pipeline.fusion_pipeline import FusionResult
from psfusion_ros.pipeline.health import ERROR, OK, WARN, HealthMonitor, Snapshot
from psfusion_ros.pipeline.mailbox import LatestMailbox
from psfusion_ros.pipeline.pair import INPUT_NAMES, RGB, THERMAL, StampedFrame, SyncedPair
from psfusion_ros.pipeline.parameters import NODE_NAME
from psfusion_ros.pipeline.registration import CameraModel, Registration
from psfusion_ros.pipeline.registration_monitor import RegistrationMonitor
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.pipeline.thermal import ThermalNormalizer
from psfusion_ros.ros.diagnostics import diagnostic_array
from psfusion_ros.ros.params import check_change, declare_parameters
from psfusion_ros.ros.signals import PROG, StopSignals

#: A stamp this far ahead of the node's clock is reported (a camera on another clock, a bad RTC).
FUTURE_STAMP_NS = 1_000_000_000


def guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Whatever one message or timer tick raises stays here: a diagnostics entry and a throttled log line."""

    @functools.wraps(method)
    def wrapper(self: PSFusionNode, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:  # noqa: BLE001 - the node must outlive any single message
            text = f"{method.__name__}: {type(exc).__name__}: {one_line(exc)}"
            self.health.processing_error(text)
            self.warn_throttled(f"guard-{method.__name__}", text)

    return wrapper


class FusionNodeBase:
    """What the plain and the managed (lifecycle) node share; mixed in before rclpy's Node / LifecycleNode.

    The steps follow the managed-node states: :meth:`_declare` (construction), :meth:`_configure` (weights loaded,
    engine built and warmed), :meth:`_activate` (subscriptions live), :meth:`_deactivate` (inputs closed, engine
    kept) and :meth:`_cleanup` (engine and its memory released). The plain node runs the first three at start-up.
    """

    pipeline: Any = None

    def _declare(self) -> None:
        """Parameters (a typo or a wrong type: ConfigError), diagnostics and live-parameter callbacks."""
        self._log_times: dict[str, float] = {}
        self.values = declare_parameters(self)  # ConfigError: the caller prints one line
        self.options = NodeConfig.from_params(self.values)
        self.health = HealthMonitor(INPUT_NAMES, self.options.diagnostics_stale_timeout,
                                    self.options.diagnostics_expected_rate)
        self.pipeline = None
        self.state_text = "unconfigured"
        self.failure = ""  # why the last transition failed (diagnostics ERROR until the next success)
        self._active = False
        self._input_subs: list[Any] = []
        self._encoded = 0  # compressed images encoded: stays 0 while nobody subscribes to them
        self._pending: dict[str, Any] = {}
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.options.diagnostics_period, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    def _configure(self) -> None:
        """Check the parameters together, load the weights, build and warm the engine. Raises PSFusionError."""
        self.config = PipelineConfig.from_params(self.values)
        self.options = NodeConfig.from_params(self.values)
        self.health = HealthMonitor(INPUT_NAMES, self.options.diagnostics_stale_timeout,
                                    self.options.diagnostics_expected_rate)
        self.pipeline = build_pipeline(self.config)  # ConfigError / CheckpointError / EngineError
        if self.pipeline.fallback:
            self.health.set_condition("engine", ERROR, f"engine fallback: {self.pipeline.fallback}")
            self.get_logger().error(f"engine fallback: {self.pipeline.fallback}")
        if not self.config.checkpoint:
            self.get_logger().warn("no checkpoint: running seeded UNTRAINED weights (allow_untrained=true)")
        o = self.options
        self.monitor = RegistrationMonitor(o.registration_check_period, o.registration_warn_px,
                                           o.registration_refine, o.registration_monitor,
                                           apply=self._apply_refinement, log=self.get_logger().info, isolated=True)
        self.sync = ApproximateTimeSync(2, self.config.sync.queue_size, self.config.sync.max_interval_ns)
        self._sync_lock = threading.Lock()
        self.mailbox: LatestMailbox[SyncedPair] = LatestMailbox()
        self._camera_info: dict[int, CameraInfo] = {}
        self.pub_fused = self.create_publisher(Image, "fused/image", 5)
        self.pub_mask = self.create_publisher(Image, "segmentation/mask", 5)
        self._optional: dict[str, Any] = {}
        self._ensure_optional_publishers()

        self._stopping = threading.Event()
        warmed = threading.Event()
        self._warm_up: list[float | BaseException] = []  # the worker's warm-up: seconds spent, or what failed
        self._worker = threading.Thread(target=self._work, args=(warmed,), name="psfusion-inference", daemon=True)
        try:
            self._worker.start()  # inside: a signal can land in start() itself, with the thread already running
            warmed.wait()  # before spinning: the first pair is then as fast as the rest
            if isinstance(self._warm_up[0], BaseException):
                raise EngineError(f"the engine failed its first pass: {type(self._warm_up[0]).__name__}: "
                                  f"{one_line(self._warm_up[0])}")
            if self._warm_up[0]:
                self.get_logger().info(f"engine warmed up in {self._warm_up[0]:.1f} s")
        except BaseException:
            # a stop signal (or a failed warm-up) while the worker runs: let its pass finish and end it, or the
            # interpreter exits under a thread that is inside torch ("terminate called without an active
            # exception", SIGABRT)
            self._cleanup()
            raise
        self.health.started(time.monotonic())

    def _activate(self) -> None:
        """Subscriptions live (raw or compressed per camera); the monitor starts checking."""
        o = self.options
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=o.qos_depth,
                         reliability=ReliabilityPolicy.BEST_EFFORT if o.qos_reliability == "best_effort"
                         else ReliabilityPolicy.RELIABLE)
        self.input_topics = []
        for index, base, transport in ((THERMAL, "thermal/image_raw", o.thermal_transport),
                                       (RGB, "rgb/image_raw", o.rgb_transport)):
            topic, msg_type = self._input_topic(base, transport)
            self.input_topics.append(topic)
            self._input_subs.append(self.create_subscription(
                msg_type, topic, functools.partial(self._on_image, index), qos,
                event_callbacks=self._qos_events(index, topic)))
        for index, topic in ((THERMAL, "thermal/camera_info"), (RGB, "rgb/camera_info")):
            self._input_subs.append(
                self.create_subscription(CameraInfo, topic, functools.partial(self._on_info, index), qos))
        self._active = True
        self.health.started(time.monotonic())
        self.monitor.start()

    def _input_topic(self, base: str, transport: str) -> tuple[str, type]:
        """image_transport's naming: the base topic resolved first (so a remap of the base applies), then
        ``/compressed`` for the compressed transport."""
        if transport == "compressed":
            return self.resolve_topic_name(base) + "/compressed", CompressedImage
        return base, Image

    def _deactivate(self) -> None:
        """Inputs closed, the pair in flight is not published; the engine stays warm."""
        self._active = False
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        self._input_subs = []
        if self.pipeline is not None:
            self.monitor.stop()
            self.mailbox.get(timeout=0)

    def _cleanup(self) -> None:
        """Stop the worker (waits for the frame in flight) and release the engine and the memory it held."""
        self._deactivate()
        self.close()
        for pub in [getattr(self, "pub_fused", None), getattr(self, "pub_mask", None),
                    *getattr(self, "_optional", {}).values()]:
            if pub is not None:
                self.destroy_publisher(pub)
        self.pub_fused = self.pub_mask = None
        self._optional = {}
        self.pipeline = None
        release_memory()

    # -- helpers ------------------------------------------------------------------------------------
    def warn_throttled(self, key: str, text: str, period_s: float = 5.0) -> None:
        now = time.monotonic()
        if now - self._log_times.get(key, -1e9) >= period_s:
            self._log_times[key] = now
            self.get_logger().warn(text)

    def _ensure_optional_publishers(self) -> None:
        """Optional outputs are advertised once enabled (at start-up or by a parameter change)."""
        o = self.options
        for key, enabled, msg_type, topic in (("color", o.publish_color, Image, "segmentation/color"),
                                              ("overlay", o.publish_overlay, Image, "fused/overlay"),
                                              ("info", o.publish_camera_info, CameraInfo, "fused/camera_info"),
                                              ("fused_jpeg", o.publish_compressed, CompressedImage,
                                               self.resolve_topic_name("fused/image") + "/compressed"),
                                              ("color_png", o.publish_compressed, CompressedImage,
                                               self.resolve_topic_name("segmentation/color") + "/compressed")):
            if enabled and key not in self._optional:
                self._optional[key] = self.create_publisher(msg_type, topic, 5)

    def _publisher(self, key: str, enabled: bool) -> Any:
        """The optional output's publisher when enabled and (camera_info aside) someone subscribes: nothing is
        computed or encoded for an output nobody reads."""
        pub = self._optional.get(key) if enabled else None
        return pub if pub is not None and (key == "info" or pub.get_subscription_count() > 0) else None

    def _qos_events(self, index: int, topic: str) -> SubscriptionEventCallbacks:
        def incompatible(info: Any) -> None:
            text = (f"{topic}: a publisher's QoS is incompatible with this subscription "
                    f"({info.last_policy_kind}); try qos.reliability:=best_effort")
            self.health.event(WARN, f"{INPUT_NAMES[index]}: {text}")
            self.warn_throttled(f"qos-{topic}", text)

        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    # -- callbacks (never wait for the network) ------------------------------------------------------
    @guarded
    def _on_info(self, index: int, msg: CameraInfo) -> None:
        name = INPUT_NAMES[index]
        registration = self.pipeline.registration
        if registration.mode == "camera_info":
            try:
                cam = CameraModel.from_camera_info(msg)
            except ConfigError as exc:
                self.health.input_problem(name, "camera_info errors", f"camera_info rejected: {exc}")
                self.warn_throttled(f"info-{name}", f"{name} camera_info rejected: {exc}")
                return
            registration.set_cameras(cam if index == THERMAL else None, cam if index == RGB else None)
        if index not in self._camera_info:
            self.get_logger().info(f"{name} camera_info received ({msg.width}x{msg.height})")
        self._camera_info[index] = msg

    @guarded
    def _on_image(self, index: int, msg: Image) -> None:
        name = INPUT_NAMES[index]
        now = time.monotonic()
        stamp = stamp_ns(msg.header.stamp)
        self.health.input_arrived(name, now, stamp)
        self._check_stamp(name, stamp)
        try:
            pixels = decode_thermal(msg) if index == THERMAL else decode_rgb(msg)
        except ImageDecodeError as exc:
            self.health.input_problem(name, "decode errors", f"image dropped: {exc}")
            self.warn_throttled(f"decode-{name}", f"{name} image dropped: {exc}")
            return
        sync_stamp = stamp + (self.config.sync.thermal_offset_ns if index == THERMAL else 0)
        frame = StampedFrame(pixels, sync_stamp, msg.header, time.monotonic_ns())
        with self._sync_lock:
            resets = self.sync.stats.resets
            sets = self.sync.push(index, sync_stamp, frame)
            if self.sync.stats.resets != resets:
                text = f"{name} stamps jumped back by more than 1 s (bag loop?): synchronizer reset"
                self.get_logger().warn(text)
                self.health.event(WARN, text)
                self.pipeline.thermal.reset()
        for matched in sets:
            self.health.pair_matched(now)
            self.mailbox.put(SyncedPair.from_set(matched))

    def _check_stamp(self, name: str, stamp: int) -> None:
        if stamp == 0:
            text = "stamp is 0 (the driver does not stamp its images): latency cannot be measured"
        elif stamp - self.get_clock().now().nanoseconds > FUTURE_STAMP_NS:
            ahead = (stamp - self.get_clock().now().nanoseconds) / 1e9
            text = f"stamps {ahead:.1f} s in the future (camera on another clock?)"
        else:
            return
        self.health.input_problem(name, "stamp errors", text)
        self.warn_throttled(f"stamp-{name}", f"{name} {text}")

    # -- worker -------------------------------------------------------------------------------------
    def _work(self, warmed: threading.Event) -> None:
        # Warm up on this thread: CUDA libraries keep per-thread handles, and on an H100 a warm-up on the main
        # thread still left the worker's first pair at ~450 ms instead of 30 ms.
        try:
            self._warm_up.append(self.pipeline.warm_up())
        except Exception as exc:  # noqa: BLE001 - reported by __init__ as a one-line start-up error
            self._warm_up.append(exc)
            return
        finally:
            warmed.set()
        while not self._stopping.is_set():
            pair = self.mailbox.get(timeout=0.2)
            if pair is None:
                continue
            registration = self.pipeline.registration  # the one this pair is registered with
            try:
                result = self.pipeline(pair.rgb.pixels, pair.thermal.pixels)
            except (FrameError, PSFusionError) as exc:
                self.health.processing_error(f"pair skipped: {exc}", level=WARN)
                self.warn_throttled("pair", f"pair skipped: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - the node must survive any inference failure
                text = f"inference failed: {type(exc).__name__}: {one_line(exc)}"
                self.health.processing_error(text, level=ERROR)
                self.warn_throttled("inference", text)
                continue
            self.monitor.offer(pair.thermal.pixels, pair.rgb.pixels, registration)
            for note in self.pipeline.registration.take_notes():
                self.get_logger().warn(note)
                self.health.event(WARN, note)
            if self._stopping.is_set() or not rclpy.ok(context=self.context):
                break
            if not self._active:  # deactivated while this pair was fused: a managed node publishes nothing
                continue
            try:
                self._publish(pair, result)
            except Exception as exc:  # noqa: BLE001 - a publish failure must not end the worker
                self.health.processing_error(f"publish failed: {type(exc).__name__}: {one_line(exc)}")

    def _publish(self, pair: SyncedPair, result: FusionResult) -> None:
        header = pair.rgb.header
        if not header.frame_id and self.options.rgb_frame_id:
            header.frame_id = self.options.rgb_frame_id
        o = self.options
        self.pub_fused.publish(fill_image(Image(header=header), result.fused, "rgb8"))
        self.pub_mask.publish(fill_image(Image(header=header), result.class_ids, "mono8"))
        color = None
        if (pub := self._publisher("color", o.publish_color)) is not None:
            color = colorize(result.class_ids)
            pub.publish(fill_image(Image(header=header), color, "rgb8"))
        if (pub := self._publisher("fused_jpeg", o.publish_compressed)) is not None:
            fmt, data = encode_compressed(result.fused, "jpeg", jpeg_quality=o.publish_jpeg_quality)
            pub.publish(CompressedImage(header=header, format=fmt, data=data))
            self._encoded += 1
        if (pub := self._publisher("color_png", o.publish_compressed)) is not None:
            color = colorize(result.class_ids) if color is None else color
            fmt, data = encode_compressed(color, "png")
            pub.publish(CompressedImage(header=header, format=fmt, data=data))
            self._encoded += 1
        if (pub := self._publisher("overlay", o.publish_overlay)) is not None:
            color = colorize(result.class_ids) if color is None else color
            alpha = o.publish_overlay_alpha
            blended = (result.fused * (1 - alpha) + color * alpha).astype(np.uint8)
            pub.publish(fill_image(Image(header=header), blended, "rgb8"))
        info = self._camera_info.get(RGB)
        if (pub := self._publisher("info", o.publish_camera_info)) is not None and info is not None:
            info.header = header
            pub.publish(info)
        stamp = stamp_ns(header.stamp)
        now = self.get_clock().now().nanoseconds
        latency = (now - stamp) / 1e6 if 0 < stamp <= now + FUTURE_STAMP_NS else None
        self.health.processed(time.monotonic(), latency, result.timing_ms, result.thermal_blank)

    # -- diagnostics --------------------------------------------------------------------------------
    @guarded
    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name().lstrip("/")  # cam0/psfusion when one node runs per camera pair
        if self.pipeline is None:  # a managed node before configure or after cleanup
            level, text = (ERROR, self.failure) if self.failure else (OK, f"{self.state_text}: not fusing")
            snap = Snapshot(level, text, {"lifecycle state": self.state_text})
            self.pub_diag.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{name}: fusion", "", snap))
            return
        with self._sync_lock:
            stats, pending = self.sync.stats, self.sync.pending()
        p = self.pipeline
        extra = {
            "matched pairs": str(stats.matched),
            "thermal dropped by sync": str(stats.dropped[THERMAL]),
            "rgb dropped by sync": str(stats.dropped[RGB]),
            "sync resets": str(stats.resets),
            "sync pending": str(min(pending)),
            "stale pairs skipped": str(self.mailbox.replaced),
            "backend": getattr(p.engine, "name", self.config.engine.backend),
            "device": str(p.device),
            "precision": self.config.engine.precision,
            "network size": f"{p.network_size[0]}x{p.network_size[1]}" if p.network_size else "per frame",
            "checkpoint": self.config.checkpoint or "untrained",
            "thermal range": _range_text(p.thermal.current_range, self.config.thermal.mode),
            "compressed images encoded": str(self._encoded),
            "lifecycle state": self.state_text,
            **self.monitor.values(),
        }
        condition = self.monitor.condition()
        if condition is None:
            self.health.clear_condition("registration")
        else:
            self.health.set_condition("registration", *condition)
        snap = self.health.snapshot(time.monotonic(), extra)
        if not self._active:
            snap = Snapshot(max(snap.level, ERROR if self.failure else OK),
                            self.failure or f"{self.state_text}: not fusing", snap.values)
        self.pub_diag.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{name}: fusion",
                                               str(p.device), snap))

    # -- live parameter changes -----------------------------------------------------------------------
    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse what is invalid, with the reason ``ros2 param set`` prints; prepare what will change."""
        try:
            changes = {}
            for parameter in parameters:
                reason, value = check_change(parameter)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
                changes[parameter.name] = value
            values = {**self.values, **changes}
            if self.pipeline is None:  # not configured: checked together at configure
                self._pending = {"values": values}
                return SetParametersResult(successful=True)
            config = self.config.with_params(changes)
            options = NodeConfig.from_params(values)
            registration = None
            if config.registration != self.config.registration:
                registration = Registration.from_config(config.registration)
                old = self.pipeline.registration
                registration.set_cameras(old.thermal_camera, old.rgb_camera)
            self._pending = {"values": values, "config": config, "options": options, "registration": registration}
            return SetParametersResult(successful=True)
        except PSFusionError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a refused change, never a node that dies of one
            self.get_logger().error(f"parameter change refused by an internal error: {one_line(exc)}")
            return SetParametersResult(successful=False, reason=f"internal error: {one_line(exc)}")

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        if "config" not in pending:
            self.values = pending["values"]
            return
        old, config, options = self.config, pending["config"], pending["options"]
        if config.thermal != old.thermal:
            self.pipeline.thermal = ThermalNormalizer(config.thermal)
        if pending["registration"] is not None:
            self.pipeline.registration = pending["registration"]
        if config.sync != old.sync:
            with self._sync_lock:
                self.sync.max_interval_ns = config.sync.max_interval_ns
        self.pipeline.config = config
        self.config, self.values = config, pending["values"]
        if options.diagnostics_period != self.options.diagnostics_period:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(options.diagnostics_period, self._publish_diagnostics)
        self.health.configure(options.diagnostics_stale_timeout, options.diagnostics_expected_rate)
        self.monitor.configure(options.registration_check_period, options.registration_warn_px,
                               options.registration_refine, options.registration_monitor)
        self.options = options
        self._ensure_optional_publishers()
        names = ", ".join(f"{p.name}={p.value!r}" for p in parameters)
        self.get_logger().info(f"parameters changed: {names}")

    def _apply_refinement(self, used: Registration, homography: np.ndarray, thermal_size: tuple[int, int],
                          rgb_size: tuple[int, int]) -> None:
        """registration.refine: auto (monitor thread): the next pairs use the refined homography, unless the
        registration was replaced meanwhile (a parameter change wins)."""
        if self.pipeline.registration is not used:
            return
        refined = Registration("homography", homography=homography, calibrated_sizes=(thermal_size, rgb_size))
        refined.set_cameras(used.thermal_camera, used.rgb_camera)
        self.pipeline.registration = refined

    def close(self) -> None:
        """Stop the worker (waits for the frame in flight), then let the engine release what it holds (TensorRT:
        the CUDA-graph mode). Idempotent."""
        if self._worker is not None:
            self.monitor.stop()
            self._stopping.set()
            self.mailbox.close()
            if self._worker.ident is not None:  # started
                self._worker.join(timeout=60.0)
            self._worker = None
        engine_close = getattr(getattr(self.pipeline, "engine", None), "close", None)
        if callable(engine_close):
            engine_close()


class PSFusionNode(FusionNodeBase, Node):
    """The plain node: configured and active from construction to shutdown."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self._configure()
        try:
            self._activate()
        except BaseException:
            self._cleanup()
            raise
        self.state_text = "active"
        self.get_logger().info(ready_line(self))


def ready_line(node: FusionNodeBase) -> str:
    o, config = node.options, node.config
    weights = config.checkpoint or "UNTRAINED seeded weights"
    return (f"ready: checkpoint {weights}; {config.summary()} [{node.pipeline.device}]; "
            f"QoS {o.qos_reliability} depth {o.qos_depth}; subscribed to "
            f"{node.resolve_topic_name(node.input_topics[0])} and {node.resolve_topic_name(node.input_topics[1])}")


def release_memory() -> None:
    """Give freed engine memory back: Python objects, CUDA's cache, and glibc's heap (RSS falls only then)."""
    import ctypes
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _range_text(value_range: tuple[float, float] | None, mode: str) -> str:
    """The raw thermal values mapped to black and white (counts or °C): what to check when the image looks flat."""
    if value_range is None:
        return f"{mode}: type range" if mode == "none" else f"{mode}: no frame yet"
    return f"{mode}: {value_range[0]:.6g} .. {value_range[1]:.6g}"


def run(args: list[str], stop: StopSignals, node_class: type | None = None) -> int:
    """Start, spin until a stop signal (or a managed node's shutdown transition), shut down in order; exit codes:
    0 stopped, 2 bad configuration."""
    node = None
    context = rclpy.Context()
    code = 0
    try:
        rclpy.init(args=[PROG, *args], context=context, signal_handler_options=SignalHandlerOptions.NO)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted while starting; stopped cleanly", file=sys.stderr)
        return 0
    except Exception as exc:  # noqa: BLE001 - rcl reports bad --ros-args as RCLError
        print(f"{PROG}: error: invalid ROS arguments: {one_line(exc).split(', at /')[0]}", file=sys.stderr)
        return 2
    try:
        node = (node_class or PSFusionNode)(context=context)
        stop.phase = "running"
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        finalized = getattr(node, "finalized", threading.Event())
        while not stop.requested.is_set() and context.ok() and not finalized.is_set():
            executor.spin_once(timeout_sec=0.1)
        stop.phase = "stopping"
        node.close()
        executor.shutdown()
    except BaseException as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
        if stop.requested.is_set() and stop.phase == "starting" and not isinstance(exc, SystemExit):
            # a signal while the weights were loading: KeyboardInterrupt, or whatever the interrupted library
            # made of it (a CheckpointError, an ImportError from a lazy import) - a stop either way
            print(f"{PROG}: interrupted while starting ({type(exc).__name__})", file=sys.stderr)
        elif isinstance(exc, PSFusionError):
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            code = 2
        else:
            raise
    finally:
        stop.phase = "stopping"
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    if code == 0:
        print(f"{PROG}: stopped cleanly", file=sys.stderr)
    return code
