"""rosbag2 (MCAP and sqlite3) reading and writing with ``rosbags``: pure Python, no ROS installation needed.

Messages read here have sensor_msgs/Image's fields, so :mod:`psfusion_ros.io.image_codec` decodes them
exactly as the node decodes live messages.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from psfusion_ros.errors import DataError, one_line
from psfusion_ros.io.compressed import encode_compressed
from psfusion_ros.io.image_codec import image_fields, stamp_ns

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
#: what an image topic may hold: raw, or image_transport's compressed (decoded by the same decoders)
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_T = TYPESTORE.types


def header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return _T["std_msgs/msg/Header"](stamp=_T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                     frame_id=frame_id)


def stamp_of(msg: Any) -> int:
    return stamp_ns(msg.header.stamp)


def image_message(pixels: np.ndarray, encoding: str, hdr: Any) -> Any:
    fields = image_fields(pixels, encoding)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return _T[IMAGE](header=hdr, **fields)


def compressed_image_message(pixels: np.ndarray, codec: str, hdr: Any, jpeg_quality: int = 95) -> Any:
    """A CompressedImage as image_transport's compressed publisher writes it (JPEG colour, PNG 8/16-bit)."""
    fmt, data = encode_compressed(pixels, codec, jpeg_quality=jpeg_quality)
    return _T[COMPRESSED_IMAGE](header=hdr, format=fmt, data=np.frombuffer(data, np.uint8))


def transport_of(msgtype: str) -> str:
    """image_transport's name for what a topic of this type carries."""
    return "compressed" if msgtype == COMPRESSED_IMAGE else "raw"


def camera_info_message(width: int, height: int, hdr: Any, fov_deg: float = 50.0) -> Any:
    """A plain pinhole camera_info (no distortion) for datasets that ship none."""
    f = width / (2 * np.tan(np.radians(fov_deg) / 2))
    k = np.array([f, 0, (width - 1) / 2, 0, f, (height - 1) / 2, 0, 0, 1], np.float64)
    p = np.array([f, 0, (width - 1) / 2, 0, 0, f, (height - 1) / 2, 0, 0, 0, 1, 0], np.float64)
    roi = _T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _T[CAMERA_INFO](header=hdr, height=height, width=width, distortion_model="plumb_bob",
                           d=np.zeros(5), k=k, r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0, roi=roi)


class BagWriter:
    """Context manager; the bag is finalized (metadata written) even when the run is interrupted."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise DataError(f"unknown bag storage {storage!r}; expected one of {tuple(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise DataError(f"{self.path} already exists; rosbag2 will not overwrite a bag (remove it or choose "
                            "another output)")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, Any] = {}
        self.count = 0
        self._abandoned = False

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()
        if self._abandoned:
            shutil.rmtree(self.path, ignore_errors=True)

    def abandon(self) -> None:
        """The run failed: the bag is removed when it closes instead of being left looking complete."""
        self._abandoned = True

    def write(self, topic: str, msg: Any, log_time_ns: int) -> None:
        self.write_raw(topic, msg.__msgtype__, TYPESTORE.serialize_cdr(msg, msg.__msgtype__), log_time_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes, log_time_ns: int) -> None:
        """Serialized CDR as received from a live subscription (``raw=True``): stored byte for byte."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        self._writer.write(self._connections[topic], int(log_time_ns), data)
        self.count += 1


class BagReader:
    """Messages of chosen topics in log-time order, deserialized one at a time (streaming)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"{self.path}: no such bag")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds for a broken bag
            raise DataError(f"{self.path}: cannot open rosbag2 ({type(exc).__name__}: {one_line(exc)})") from None

    def topics(self) -> dict[str, tuple[str, int]]:
        """topic → (message type, message count)."""
        out: dict[str, tuple[str, int]] = {}
        for c in self._reader.connections:
            msgtype, count = out.get(c.topic, (c.msgtype, 0))
            out[c.topic] = (msgtype, count + c.msgcount)
        return out

    def check_topics(self, topics: list[str], msgtypes: tuple[str, ...] = IMAGE_TYPES) -> None:
        """Each topic is in the bag with one of ``msgtypes``; else one line naming what the bag has instead."""
        available = self.topics()
        for topic in topics:
            if topic not in available:
                images = [t for t, (mt, _) in available.items() if mt in msgtypes]
                what = "image" if msgtypes == IMAGE_TYPES else " or ".join(msgtypes)
                raise DataError(f"{self.path}: no topic {topic}; {what} topics in the bag: "
                                f"{', '.join(images) or 'none'}")
            if available[topic][0] not in msgtypes:
                raise DataError(f"{self.path}: topic {topic} holds {available[topic][0]}, not "
                                f"{' or '.join(msgtypes)}")

    @property
    def span_ns(self) -> tuple[int, int]:
        """(first, last) log time in the bag."""
        return self._reader.start_time, self._reader.end_time

    def raw_messages(self, topics: list[str], start_ns: int | None = None,
                     stop_ns: int | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, message type, log_time_ns, serialized CDR) without deserializing (replay as recorded)."""
        connections = [c for c in self._reader.connections if c.topic in topics]
        for connection, log_time, raw in self._stored(connections, start_ns, stop_ns):
            yield connection.topic, connection.msgtype, log_time, bytes(raw)

    def messages(self, topics: list[str], skip: Callable[[str, int, str], None] | None = None
                 ) -> Iterator[tuple[str, int, Any]]:
        """(topic, log_time_ns, message) for the given topics. A message that does not deserialize (garbage
        CDR) goes to ``skip(topic, log_time_ns, reason)`` and is left out; without ``skip`` it is a DataError."""
        connections = [c for c in self._reader.connections if c.topic in topics]
        for connection, log_time, raw in self._stored(connections):
            try:
                msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds for a corrupt payload
                reason = f"undecodable {connection.msgtype} ({type(exc).__name__}: {one_line(exc)[:120]})"
                if skip is None:
                    raise DataError(f"{self.path}: {connection.topic} at {log_time}: {reason}") from None
                skip(connection.topic, log_time, reason)
                continue
            yield connection.topic, log_time, msg

    def _stored(self, connections: list[Any], start_ns: int | None = None, stop_ns: int | None = None
                ) -> Iterator[tuple[Any, int, Any]]:
        """The storage's own iteration; a corrupt file (sqlite3 pages, MCAP chunks) is one DataError line."""
        count = 0
        iterator = self._reader.messages(connections=connections, start=start_ns, stop=stop_ns)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - sqlite3.DatabaseError, MCAP and rosbags errors alike
                raise DataError(f"{self.path}: the bag is corrupt after {count} messages ({type(exc).__name__}: "
                                f"{one_line(exc)[:160]})") from None
            count += 1
            yield item

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
