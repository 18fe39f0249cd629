"""A synchronized thermal + RGB pair: what the synchronizer hands to the worker, the evaluator and the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Input order of the synchronizer everywhere in this package.
THERMAL, RGB = 0, 1
INPUT_NAMES = ("thermal", "rgb")


@dataclass(frozen=True)
class StampedFrame:
    """Decoded pixels with the stamp they are synchronized by and the message header they came with."""

    pixels: np.ndarray
    stamp_ns: int
    header: Any = None  # std_msgs/Header of the source message (rclpy or rosbags); outputs copy the RGB one
    received_ns: int = 0  # receipt time (live) or log time (bag)


@dataclass(frozen=True)
class SyncedPair:
    thermal: StampedFrame
    rgb: StampedFrame

    @classmethod
    def from_set(cls, matched: tuple[tuple[int, StampedFrame], ...]) -> SyncedPair:
        """From one set returned by :meth:`ApproximateTimeSync.push` (inputs in THERMAL, RGB order)."""
        return cls(thermal=matched[THERMAL][1], rgb=matched[RGB][1])

    @property
    def offset_ns(self) -> int:
        """Thermal stamp minus RGB stamp."""
        return self.thermal.stamp_ns - self.rgb.stamp_ns
