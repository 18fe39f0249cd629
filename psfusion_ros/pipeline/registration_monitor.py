"""Watches a running registration: is the thermal frame still where the calibration puts it?

Rigs drift (a bumped mount, thermal expansion, a camera swapped), and a misregistered pair makes PSFusion fuse
double edges. Every ``period_s`` the monitor refines the current homography locally on the latest pair
(:func:`~psfusion_ros.pipeline.auto_registration.estimate_registration` with ``initial``) and measures how far
the refined one moves the thermal footprint's corners: the *residual* in RGB pixels.

* ``AGREE`` consecutive confident checks above ``warn_px`` whose refined homographies agree with each other
  (within ``AGREE_PX``) make a warning; one confident check below ``warn_px`` clears it. Frames of a moving
  vehicle differ, so a near object's parallax in one frame cannot make several checks agree.
* ``refine="auto"`` applies the refined homography once ``AGREE`` checks agree on more than ``REFINE_MIN_PX``,
  moving the footprint corners by at most ``MAX_STEP_PX`` per step, then starts counting again.

It runs on its own thread at the lowest scheduling priority (nice 19) on frames shrunk to ``CHECK_SIDE``
pixels, so the inference worker keeps the processor; nothing here imports ROS.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from psfusion_ros.pipeline.auto_registration import displacement_px, footprint_corners
from psfusion_ros.pipeline.registration_check import Check, check_registration
from psfusion_ros.pipeline.registration_worker import CheckWorker

if TYPE_CHECKING:  # registration.py imports torch
    from psfusion_ros.pipeline.registration import Registration

AGREE = 3
AGREE_PX = 2.0
#: Below this the checks measure the estimator's own bias on the scene (1-1.5 px on the synthetic drive), not drift.
REFINE_MIN_PX = 2.0
MAX_STEP_PX = 4.0
WARN = 1


def bounded_step(current: np.ndarray, target: np.ndarray, thermal_size: tuple[int, int], rgb_size: tuple[int, int],
                 max_px: float = MAX_STEP_PX) -> np.ndarray:
    """A homography between ``current`` and ``target`` whose footprint corners moved at most ``max_px``."""
    corners = footprint_corners(current, thermal_size, rgb_size)
    inverse = np.linalg.inv(current)
    thermal_pts = cv2.perspectiveTransform(corners[None], inverse)[0]
    goal = cv2.perspectiveTransform(thermal_pts[None], np.asarray(target, np.float64))[0]
    move = goal - corners
    length = np.linalg.norm(move, axis=1, keepdims=True)
    scale = np.minimum(1.0, max_px / np.maximum(length, 1e-9))
    step, _ = cv2.findHomography(thermal_pts, corners + move * scale, 0)  # float64, exact for four points
    return step / step[2, 2]


class RegistrationMonitor:
    """Thread-safe: the worker offers pairs, the node reads :meth:`values` and :meth:`condition`."""

    def __init__(self, period_s: float, warn_px: float, refine: str = "off", enabled: bool = True,
                 apply: Callable[[Registration, np.ndarray, tuple[int, int], tuple[int, int]], None] | None = None,
                 log: Callable[[str], None] | None = None, isolated: bool = False) -> None:
        self.period_s, self.warn_px, self.refine, self.enabled = period_s, warn_px, refine, enabled
        #: checks run in a separate low-priority process (the node): a thread would share the GIL with inference
        self._worker = CheckWorker() if isolated else None
        self._apply, self._log = apply, log or (lambda text: None)
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, np.ndarray, Registration] | None = None
        self._history: deque[Check] = deque(maxlen=AGREE)
        self._basis: int | None = None  # id of the Registration the history belongs to
        self.last: Check | None = None
        self.checks = 0
        self.updates = 0
        self.skipped = ""
        self._warning: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- settings and input -----------------------------------------------------------------------------
    def configure(self, period_s: float, warn_px: float, refine: str, enabled: bool) -> None:
        with self._lock:
            self.period_s, self.warn_px, self.refine, self.enabled = period_s, warn_px, refine, enabled
            if not enabled:
                self._warning = None
        self._wake.set()

    def offer(self, thermal: np.ndarray, rgb: np.ndarray, registration: Registration) -> None:
        """The latest pair the pipeline fused, and the registration it used (kept by reference, not copied)."""
        with self._lock:
            self._latest = (thermal, rgb, registration)

    # -- the thread ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start (or, after :meth:`stop`, restart) the checking thread."""
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="psfusion-registration-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:  # Linux schedules threads separately: the lowest priority for this one only
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        while not self._stop.is_set():
            self._wake.wait(self.period_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.enabled:
                try:
                    self.check_now()
                except Exception as exc:  # noqa: BLE001 - a check must never end the monitor (or the node)
                    self.skipped = f"check failed: {type(exc).__name__}: {exc}"[:200]

    # -- one check ------------------------------------------------------------------------------------------
    def check_now(self) -> Check | None:
        """Check the latest pair now (the thread calls this; tests call it directly)."""
        with self._lock:
            latest = self._latest
        if latest is None:
            self.skipped = "no pair fused yet"
            return None
        thermal, rgb, registration = latest
        if self._worker is None:
            check = check_registration(registration, thermal, rgb)
        else:
            current = registration.homography_for(tuple(rgb.shape[:2]), tuple(thermal.shape[:2]))
            check = None if current is None else self._worker.measure(current, thermal, rgb)
        if check is None:
            self.skipped = "not checked in camera_info mode"
            return None
        self.skipped = "" if check.confident else f"last check not confident: {check.reason}"
        self._decide(check, registration, check.confident)
        return check

    def _decide(self, check: Check, registration: Registration, confident: bool) -> None:
        with self._lock:
            self.checks += 1
            self.last = check
            if id(registration) != self._basis:  # another calibration is in use: start counting again
                self._basis = id(registration)
                self._history.clear()
                self._warning = None
            if not confident:
                return
            self._history.append(check)
            if check.residual_px <= self.warn_px:
                self._warning = None
            history = list(self._history)
            agree = len(history) == AGREE and all(
                displacement_px(history[-1].refined, c.refined, check.thermal_size, check.rgb_size) <= AGREE_PX
                for c in history[:-1])
            residual = float(np.median([c.residual_px for c in history]))
            if agree and all(c.residual_px > self.warn_px for c in history):
                self._warning = f"thermal and RGB misaligned by ~{residual:.0f} px (psfusion-calibrate --auto)"
            refine = agree and self.refine == "auto" and all(c.residual_px > REFINE_MIN_PX for c in history)
            if refine:
                self._history.clear()
        if refine and self._apply is not None:
            target = bounded_step(check.current, check.refined, check.thermal_size, check.rgb_size)
            moved = displacement_px(check.current, target, check.thermal_size, check.rgb_size)
            self._apply(registration, target, check.thermal_size, check.rgb_size)
            self.updates += 1
            self._log(f"registration refined from the images: moved {moved:.1f} px (residual was {residual:.1f} px, "
                      f"{AGREE} agreeing checks)")

    # -- reporting ------------------------------------------------------------------------------------------
    def values(self) -> dict[str, str]:
        """Diagnostics values."""
        last = self.last
        if not self.enabled:
            return {"registration check": "off"}
        out = {"registration checks": str(self.checks), "registration updates": str(self.updates)}
        if last is None:
            out["registration residual (px)"] = out["registration confidence"] = "n/a"
        else:
            out["registration residual (px)"] = f"{last.residual_px:.2f}"
            out["registration confidence"] = f"{last.confidence:.2f}"
            out["registration check (ms)"] = f"{last.seconds * 1e3:.0f}"
        if self.skipped:
            out["registration check"] = self.skipped
        return out

    def condition(self) -> tuple[int, str] | None:
        """(WARN, text) while agreeing checks say the registration is off, else None."""
        with self._lock:
            return (WARN, self._warning) if self._warning else None

    def summary(self) -> dict[str, Any]:
        return {"checks": self.checks, "updates": self.updates,
                "residual_px": None if self.last is None else self.last.residual_px}
