"""The node's parameters on rclpy: declared from the one table with ranges and read-only flags, checked at start-up,
and changed while the node runs through callbacks that validate, refuse with a reason, and apply under a lock.
"""
from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from .params import PARAMETERS, ParamValue, check_parameter, check_parameters

# Parameters that rclpy itself declares and reads on every node.
RCLPY_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})


def descriptor(name: str) -> ParameterDescriptor:
    """The ROS descriptor of one table entry: type, description, range or allowed values, read-only unless live."""
    spec = PARAMETERS[name]
    result = ParameterDescriptor(name=name, type=Parameter.Type.from_parameter_value(spec.default).value,
                                 description=spec.description, read_only=not spec.live,
                                 additional_constraints="; ".join(
                                     filter(None, (spec.constraints(), "" if spec.live else "read at start-up only"))))
    if type(spec.default) is float:
        result.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    elif type(spec.default) is int:
        result.integer_range = [IntegerRange(from_value=spec.low, to_value=spec.high, step=1)]
    return result


def _given_value(node: Node, name: str) -> Any:
    """The value a params file or `-p` gave `name` (whatever its type), or None when none was given."""
    if not node.has_parameter(name):
        # dynamically typed, so an override of any type is taken as it is and checked by us, not refused by rclpy
        node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True))
    value = node.get_parameter(name).value
    node.undeclare_parameter(name)
    return value


def declare_node_parameters(node: Node) -> dict[str, ParamValue]:
    """Declare every parameter of the table on `node` with its descriptor and return the values.

    Every given value is checked first (an integer is accepted for a double), so a bad one raises ValueError naming
    it before anything is declared. Overrides of unknown names, which a node created with
    `automatically_declare_parameters_from_overrides=True` holds, are warned about (with the closest known name)
    and undeclared, so setting them later fails instead of silently doing nothing.
    """
    for name in sorted(set(node.list_parameters([], 0).names) - set(PARAMETERS) - RCLPY_PARAMETERS):
        close = difflib.get_close_matches(name, PARAMETERS, n=1)
        node.get_logger().warning(f"ignoring unknown parameter {name!r}"
                                  + (f" (did you mean {close[0]!r}?)" if close else ""))
        node.undeclare_parameter(name)
    given = {name: _given_value(node, name) for name in PARAMETERS}
    values = check_parameters({name: spec.default if given[name] is None else given[name]
                               for name, spec in PARAMETERS.items()})
    for name, value in values.items():
        node.declare_parameter(name, value, descriptor(name), ignore_override=True)
    return values


class LiveParameters:
    """Run-time parameter changes: integers for doubles are converted, every change is checked by the table and
    by `validate(all values)` (its ValueError is the refusal's reason), then `apply(all values)` runs under a lock.

    Read-only parameters are refused by rclpy itself, from their descriptors.
    """

    def __init__(self, node: Node, values: dict[str, ParamValue],
                 validate: Callable[[dict[str, ParamValue]], Any],
                 apply: Callable[[dict[str, ParamValue]], None]):
        self._values = dict(values)
        self._validate = validate
        self._apply = apply
        self._lock = threading.Lock()
        node.add_pre_set_parameters_callback(self._coerce)
        node.add_on_set_parameters_callback(self._check)
        node.add_post_set_parameters_callback(self._apply_set)

    @staticmethod
    def _coerce(parameters: list[Parameter]) -> list[Parameter]:
        """`ros2 param set x 2` for a double gives an integer: pass it on as the double it means."""
        doubles = {name for name, spec in PARAMETERS.items() if type(spec.default) is float}
        return [Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
                if p.type_ == Parameter.Type.INTEGER and p.name in doubles else p for p in parameters]

    def _changes(self, parameters: list[Parameter]) -> dict[str, Any]:
        return {p.name: p.value for p in parameters if p.name in PARAMETERS}

    def _check(self, parameters: list[Parameter]) -> SetParametersResult:
        try:
            with self._lock:
                candidate = self._values | {name: check_parameter(name, value)
                                            for name, value in self._changes(parameters).items()}
                self._validate(candidate)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_set(self, parameters: list[Parameter]) -> None:
        changes = self._changes(parameters)
        if not changes:
            return
        with self._lock:
            self._values.update({name: check_parameter(name, value) for name, value in changes.items()})
            self._apply(dict(self._values))
