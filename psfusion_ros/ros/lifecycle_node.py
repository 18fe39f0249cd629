"""``psfusion_lifecycle_node``: the same node as a ROS 2 managed (lifecycle) node, for lifecycle managers.

A second executable rather than a ``lifecycle`` parameter: whether the node is managed decides its class and its
services before any parameter can be read, and launch files start managed nodes with their own action
(``launch_ros.actions.LifecycleNode``). The node keeps its name, topics and parameters; only the states differ:

- unconfigured: parameters declared (a typo or a wrong type still ends the process with one line, exit 2);
  /diagnostics reports the state.
- configure: the parameters checked together, weights loaded, engine built and warmed (FAILURE with the reason
  in the log and /diagnostics, e.g. a broken checkpoint; the node stays unconfigured and can be configured again).
- activate: subscriptions live, outputs published. deactivate: inputs closed, nothing published, engine kept warm.
- cleanup: the engine and its memory released (back to unconfigured). shutdown: released too, then the process
  exits 0.
"""

from __future__ import annotations

import threading
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from psfusion_ros.errors import PSFusionError, one_line
from psfusion_ros.pipeline.parameters import NODE_NAME
from psfusion_ros.ros.node import FusionNodeBase, ready_line

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PSFusionLifecycleNode(FusionNodeBase, LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self.finalized = threading.Event()  # the run loop ends the process once set
        self.get_logger().info("unconfigured: waiting for the configure transition")

    def _transition(self, name: str, step: Any, state_after: str) -> TransitionCallbackReturn:
        try:
            step()
        except PSFusionError as exc:
            self.failure = f"{name} failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - a failed transition, never a dead node
            self.failure = f"{name} failed: {type(exc).__name__}: {one_line(exc)}"
        else:
            self.failure = ""
            self.state_text = state_after
            return SUCCESS
        self.get_logger().error(self.failure)
        return FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self._configure, "inactive")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("activate", self._activate, "active")
        if result == SUCCESS:
            self.get_logger().info(ready_line(self))
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("deactivate", self._deactivate, "inactive")
        self.get_logger().info("inactive: inputs closed, engine kept")
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("cleanup", self._cleanup, "unconfigured")
        self.get_logger().info(f"unconfigured: engine released (RSS {rss_mb():.0f} MB)")
        return result

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("shutdown", self._cleanup, "finalized")
        self.finalized.set()
        return SUCCESS if result == SUCCESS else FAILURE

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._transition("error recovery", self._cleanup, "unconfigured")
        return SUCCESS  # back to unconfigured: configure may be tried again


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")
