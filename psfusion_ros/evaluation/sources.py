"""Where evaluated pairs come from: a rosbag2 (synchronized and decoded exactly as the node does it, raw or
compressed topics alike) or an image-folder dataset (paired by file name, as the paper's test script does).

The evaluation, the automatic calibration's bag mode and training's ``--bag`` all read pairs through here, so a
drive is paired the same way wherever it is used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psfusion_ros.errors import DataError, ImageDecodeError, PSFusionError
from psfusion_ros.io.bags import IMAGE_TYPES, BagReader, header, stamp_of, transport_of
from psfusion_ros.io.compressed import decode_compressed, is_compressed
from psfusion_ros.io.image_codec import decode_image, decode_rgb, decode_thermal
from psfusion_ros.io.image_files import find_label_dir, label_path, matched_names, read_image, read_label
from psfusion_ros.metrics import ConfusionMatrix
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.pair import StampedFrame, SyncedPair
from psfusion_ros.pipeline.sync import ApproximateTimeSync

FOLDER_EPOCH_NS = 1_700_000_000 * 1_000_000_000


@dataclass
class BagSource:
    """Which topics of a bag hold the pair (and labels); ``limit``: stop after that many pairs (0: all)."""

    thermal_topic: str = "/thermal/image_raw"
    rgb_topic: str = "/rgb/image_raw"
    label_topic: str = "/labels/image"
    limit: int = 0


@dataclass
class FolderSource:
    """An image-folder dataset: infrared and visible folders (same names), labels found beside them if not given."""

    ir: str
    vi: str
    labels: str | None = None
    limit: int = 0


@dataclass
class EvalItem:
    """One synchronized pair and what the evaluation knows about it."""

    index: int
    pair: SyncedPair
    name: str = ""
    label: np.ndarray | None = None
    decode_ms: float = 0.0
    sync_ms: float = 0.0


@dataclass
class Accumulator:
    """Everything the report needs, kept small: per-pair rows are a few numbers each."""

    per_pair: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, list[float]] = field(default_factory=dict)
    previews: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    confusion: ConfusionMatrix | None = None
    skipped: list[str] = field(default_factory=list)
    blank_thermal: int = 0
    registration: list[dict[str, Any]] = field(default_factory=list)

    def time(self, stage: str, ms: float) -> None:
        self.timing.setdefault(stage, []).append(ms)


def topic_transports(reader: BagReader, topics: list[str]) -> dict[str, str]:
    """topic → "raw" or "compressed", from the bag's metadata (what report.json records)."""
    available = reader.topics()
    return {t: transport_of(available[t][0]) for t in topics if t in available}


def bag_items(reader: BagReader, args: BagSource | Any, config: PipelineConfig, acc: Accumulator,
              sync: ApproximateTimeSync) -> Iterator[EvalItem]:
    """Synchronized pairs of a bag (``args``: a :class:`BagSource` or anything with its fields), undecodable
    messages noted in ``acc.skipped``."""
    reader.check_topics([args.thermal_topic, args.rgb_topic], IMAGE_TYPES)
    topics = reader.topics()
    if args.label_topic in topics:
        reader.check_topics([args.label_topic], IMAGE_TYPES)
    wanted = [args.thermal_topic, args.rgb_topic] + ([args.label_topic] if args.label_topic in topics else [])
    labels: dict[int, np.ndarray] = {}
    count = 0
    offset_ns = config.sync.thermal_offset_ns  # as the node: thermal stamps shifted before pairing
    # A pair waits for the next image message before it is handed out: a recorder writes the label of a frame
    # after the frame, so it is read by then.
    waiting: list[tuple[list, float, float]] = []

    def release() -> Iterator[EvalItem]:
        nonlocal count
        for sets, decode_ms, sync_ms in waiting:
            for matched in sets:
                if args.limit and count >= args.limit:
                    return
                pair = SyncedPair.from_set(matched)
                yield EvalItem(count, pair, label=labels.pop(stamp_of(pair.rgb), None), decode_ms=decode_ms,
                               sync_ms=sync_ms)
                count += 1
        waiting.clear()

    def undecodable(topic: str, log_time: int, reason: str) -> None:
        acc.skipped.append(f"{topic} at log time {log_time}: {reason}")

    for topic, log_time, msg in reader.messages(wanted, skip=undecodable):
        if args.limit and count >= args.limit:
            return
        t0 = time.perf_counter()
        if topic == args.label_topic:
            try:
                labels[stamp_of(msg)] = np.array(decode_compressed(msg)[0] if is_compressed(msg) else decode_image(msg))
            except ImageDecodeError as exc:
                acc.skipped.append(f"{topic} at {stamp_of(msg)}: {exc}")
            if len(labels) > 1000:  # labels that never matched an RGB frame: forget the oldest
                for key in sorted(labels)[:500]:
                    labels.pop(key)
            continue
        yield from release()
        thermal = topic == args.thermal_topic
        try:
            pixels = decode_thermal(msg) if thermal else decode_rgb(msg)
        except ImageDecodeError as exc:
            acc.skipped.append(f"{topic} at {stamp_of(msg)}: {exc}")
            continue
        stamp = stamp_of(msg) + (offset_ns if thermal else 0)
        t1 = time.perf_counter()
        sets = sync.push(0 if thermal else 1, stamp, StampedFrame(pixels, stamp, msg.header, log_time))
        waiting.append((sets, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3))
    waiting.append((sync.flush(), 0.0, 0.0))  # the bag ended: the pending pair cannot improve any more
    yield from release()


def folder_items(args: FolderSource | Any, acc: Accumulator) -> Iterator[EvalItem]:
    names, _ = matched_names(Path(args.ir), Path(args.vi))
    if not names:
        raise DataError(f"no image file names appear in both {args.ir} and {args.vi}")
    label_dir = Path(args.labels) if args.labels else find_label_dir(Path(args.ir).parent)
    for index, name in enumerate(names[: args.limit or None]):
        t0 = time.perf_counter()
        try:
            rgb, thermal = read_image(Path(args.vi) / name, "RGB"), read_image(Path(args.ir) / name, "L")
            label = None
            if label_dir is not None:
                path = label_path(label_dir, name)
                label = read_label(path) if path else None
        except PSFusionError as exc:
            acc.skipped.append(str(exc))
            continue
        stamp = FOLDER_EPOCH_NS + index * 100_000_000
        hdr = header(stamp, "rgb_optical")
        pair = SyncedPair(StampedFrame(thermal, stamp, hdr, stamp), StampedFrame(rgb, stamp, hdr, stamp))
        yield EvalItem(index, pair, name=name, label=label, decode_ms=(time.perf_counter() - t0) * 1e3)


