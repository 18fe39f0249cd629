"""rosbag2 (MCAP and sqlite3) reading and writing with ``rosbags``: pure Python, no ROS installation needed.

Messages read here have sensor_msgs/Image's fields, so :mod:`psfusion_ros.io.image_codec` decodes them
exactly as the node decodes live messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from psfusion_ros.errors import DataError, one_line
from psfusion_ros.io.image_codec import image_fields, stamp_ns

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = "sensor_msgs/msg/Image"
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

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

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

    @property
    def span_ns(self) -> tuple[int, int]:
        """(first, last) log time in the bag."""
        return self._reader.start_time, self._reader.end_time

    def raw_messages(self, topics: list[str], start_ns: int | None = None,
                     stop_ns: int | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, message type, log_time_ns, serialized CDR) without deserializing (replay as recorded)."""
        connections = [c for c in self._reader.connections if c.topic in topics]
        for connection, log_time, raw in self._reader.messages(connections=connections, start=start_ns, stop=stop_ns):
            yield connection.topic, connection.msgtype, log_time, bytes(raw)

    def messages(self, topics: list[str]) -> Iterator[tuple[str, int, Any]]:
        """(topic, log_time_ns, message) for the given topics."""
        connections = [c for c in self._reader.connections if c.topic in topics]
        for connection, log_time, raw in self._reader.messages(connections=connections):
            yield connection.topic, log_time, TYPESTORE.deserialize_cdr(raw, connection.msgtype)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
