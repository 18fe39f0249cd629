"""Declare the parameter table on an rclpy node: descriptors users can read, values checked before rclpy sees them.

``ros2 param describe /psfusion network_height`` shows the range (step 32), choices appear in
``additional_constraints``, and parameters that cannot change while running are read-only. Values from
``--params-file`` and ``-p`` are checked by :func:`~psfusion_ros.pipeline.parameters.check_value` first, so an
integer where a number is expected is accepted and a typo or a wrong type is one line, not an rclpy traceback.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.parameters import PARAMS, Param, check_value, is_ros_own, unknown_parameter_message


def descriptor(param: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=param.description, read_only=not param.dynamic,
                            additional_constraints=param.constraints)
    if param.kind == "int" and (param.low is not None or param.high is not None):
        d.integer_range = [IntegerRange(from_value=int(param.low or 0), to_value=int(param.high or 2**31 - 1),
                                        step=param.step)]
    elif param.kind == "float" and param.low is not None and param.high is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    return d


def _overrides(node: Node) -> dict[str, Parameter]:
    # rclpy keeps the values from --params-file and -p here until they are declared; there is no public
    # accessor, and checking them first is the only way to give one clear line instead of its exceptions.
    return getattr(node, "_parameter_overrides", {})


def declare_parameters(node: Node) -> dict[str, Any]:
    """Declare every parameter of the table; returns the values in effect. Raises :class:`ConfigError`."""
    overrides = _overrides(node)
    unknown = sorted(name for name in overrides if name not in {p.name for p in PARAMS} and not is_ros_own(name))
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ConfigError(unknown_parameter_message(unknown[0]) + more)
    for name, parameter in list(overrides.items()):
        if is_ros_own(name):
            continue
        checked = check_value(name, parameter.value)
        if type(checked) is not type(parameter.value) or checked != parameter.value:
            overrides[name] = Parameter(name, value=checked)  # e.g. 16000 → 16000.0 for a double parameter
    for p in PARAMS:
        node.declare_parameter(p.name, p.default, descriptor(p))
    return {p.name: node.get_parameter(p.name).value for p in PARAMS}


def check_change(parameter: Parameter) -> tuple[str | None, Any]:
    """(reason it is refused or None, converted value) for a live ``ros2 param set``."""
    try:
        return None, check_value(parameter.name, parameter.value)
    except ConfigError as exc:
        return str(exc), None
