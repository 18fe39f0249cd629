"""Publishing a rosbag2 live with its recorded timing: the engine behind ``psfusion-bag play`` and the live
evaluation. Messages go out byte for byte as recorded (serialized CDR), raw and compressed images alike."""

from __future__ import annotations

import importlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tqdm import tqdm

from psfusion_ros.errors import ConfigError, DataError
from psfusion_ros.io.bags import BagReader

#: Seconds a best-effort player stays after its last message (nothing tells it the transport delivered it).
BEST_EFFORT_LINGER_S = 1.0
#: Seconds a best-effort player waits after it sees its subscribers: discovery is not symmetric, the reader
#: matches the writer a moment after the writer counted the reader, and best effort drops what goes out between.
BEST_EFFORT_MATCH_GRACE_S = 1.0
#: Types replayed by default (what the node consumes); ``--topics`` may name others.
DEFAULT_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo")


def message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` → the rclpy class (None when its package is not installed here)."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


@dataclass
class PlayStats:
    published: Counter = field(default_factory=Counter)  # output topic → messages
    loops: int = 0
    seconds: float = 0.0


class BagPlayer:
    """Publishes a bag in its own rclpy context (safe to run in a thread beside other nodes)."""

    def __init__(self, bag: str | Path, topics: list[str] | None = None, remaps: dict[str, str] | None = None,
                 rate: float = 1.0, loop: bool = False, start: float = 0.0, duration: float | None = None,
                 reliability: str = "reliable", depth: int = 100, clock: bool = False) -> None:
        self.reader = BagReader(bag)
        available = self.reader.topics()
        wanted = topics or [t for t, (mt, _) in available.items() if mt in DEFAULT_TYPES]
        missing = [t for t in wanted if t not in available]
        if missing:
            raise DataError(f"{bag}: no topic {missing[0]}; topics: {', '.join(sorted(available))}")
        if not wanted:
            raise DataError(f"{bag}: no image or camera_info topics to play (name them with --topics)")
        if not rate > 0:
            raise ConfigError("--rate must be positive")
        self.rate, self.loop, self.clock = rate, loop, clock
        first, last = self.reader.span_ns
        self.start_ns = first + int(start * 1e9)
        self.stop_ns = last + 1 if duration is None else self.start_ns + int(duration * 1e9)
        if self.start_ns >= last + 1:
            raise ConfigError(f"--start {start} s is past the end of the bag ({(last - first) / 1e9:.1f} s)")
        self.remaps = remaps or {}
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = Node("psfusion_bag_player", context=self.context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
                         reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        self.publishers: dict[str, Any] = {}
        skipped = []
        for topic in wanted:
            cls = message_class(available[topic][0])
            if cls is None:
                skipped.append(topic)
                continue
            self.publishers[topic] = self.node.create_publisher(cls, self.remaps.get(topic, topic), qos)
        self.skipped = skipped
        self._clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self._clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.stats = PlayStats()

    @property
    def duration_s(self) -> float:
        return (min(self.stop_ns, self.reader.span_ns[1] + 1) - self.start_ns) / 1e9

    def wait_for_subscribers(self, timeout: float) -> bool:
        """True once every replayed topic has a subscriber (bounded). A reliable writer re-sends what the reader
        missed while it was still matching; a best-effort one cannot, so it gives the readers a moment first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                if any(p.qos_profile.reliability != ReliabilityPolicy.RELIABLE for p in self.publishers.values()):
                    time.sleep(BEST_EFFORT_MATCH_GRACE_S)
                return True
            time.sleep(0.05)
        return False

    def _publish_clock(self, log_time: int) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        sec, nanosec = divmod(log_time, 1_000_000_000)
        self._clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))

    def play(self, stop: threading.Event | None = None, progress: bool = True) -> PlayStats:
        """Publish until the end (or forever with ``loop``) or until ``stop`` is set."""
        stop = stop or threading.Event()
        started = time.monotonic()
        bar = tqdm(total=round(self.duration_s, 1), unit="s", disable=not progress, dynamic_ncols=True,
                   bar_format="{desc} {n:.1f}/{total:.1f} s |{bar}| {postfix}")
        try:
            while not stop.is_set():
                wall0, shown = time.monotonic(), 0.0
                for topic, _, log_time, raw in self.reader.raw_messages(list(self.publishers), self.start_ns,
                                                                         self.stop_ns):
                    due = wall0 + (log_time - self.start_ns) / 1e9 / self.rate
                    while not stop.is_set() and (wait := due - time.monotonic()) > 0:
                        time.sleep(min(wait, 0.01))  # pacing to the recorded timing
                        if self._clock_pub is not None:
                            self._publish_clock(self.start_ns + int((time.monotonic() - wall0) * self.rate * 1e9))
                    if stop.is_set():
                        break
                    if self._clock_pub is not None:
                        self._publish_clock(log_time)
                    self.publishers[topic].publish(raw)
                    self.stats.published[self.remaps.get(topic, topic)] += 1
                    position = (log_time - self.start_ns) / 1e9
                    if position - shown >= 0.25:
                        bar.update(round(position - shown, 2))
                        shown = position
                        bar.set_postfix_str(f"{sum(self.stats.published.values())} msgs, x{self.rate:g}"
                                            + (f", loop {self.stats.loops + 1}" if self.loop else ""))
                if not stop.is_set():
                    bar.update(max(bar.total - bar.n, 0))
                if not self.loop or stop.is_set():
                    break
                self.stats.loops += 1
                bar.reset()
        finally:
            bar.close()
            self.stats.seconds = time.monotonic() - started
        return self.stats

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until subscribers acknowledged what reliable publishers sent, so the tail is not lost on exit.
        Best effort acknowledges nothing: linger a moment so the last frames can still leave the process."""
        from rclpy.duration import Duration

        best_effort = False
        for pub in self.publishers.values():
            if pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                pub.wait_for_all_acked(Duration(seconds=timeout_s))
            else:
                best_effort = True
        if best_effort and sum(self.stats.published.values()):
            time.sleep(BEST_EFFORT_LINGER_S)

    def close(self) -> None:
        self.flush()
        self.reader.close()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
