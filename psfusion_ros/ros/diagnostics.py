"""A health snapshot as the diagnostic_msgs/DiagnosticArray that rqt_robot_monitor and aggregators read."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from psfusion_ros.pipeline.health import Snapshot


def diagnostic_array(stamp: Any, name: str, hardware_id: str, snap: Snapshot) -> DiagnosticArray:
    status = DiagnosticStatus(level=bytes([snap.level]), name=name, message=snap.message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in snap.values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
