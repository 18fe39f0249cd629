"""Shared fixtures. Small images (64x96) keep the real network around a second per pass on a CPU.

Every ROS process a test starts (and the test process itself) uses a private DDS domain discovered on loopback
only, so parallel runs and other ROS software on the machine never see each other.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

os.environ["ROS_DOMAIN_ID"] = str(50 + os.getpid() % 150)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import numpy as np
import pytest
import torch

from helpers import TRAIN_ARGS, deterministic_weights
from psfusion_ros.model import PSFusion

BIN = Path(sys.executable).parent


def _low_priority_group() -> None:
    """Own process group (killed as one), same session: with the kernel's autogroup scheduling a new session is a new
    autogroup that competes as an equal with the suite's, whatever its nice value (measured: exports 2-3x slower)."""
    os.setpgid(0, 0)
    os.nice(19)


class Background:
    """The expensive session artifacts (an AOTInductor package, a training run, an ONNX export of the trained
    checkpoint) are built by the real CLIs in subprocesses started right after collection at the lowest CPU priority:
    they use what the suite leaves idle instead of stalling the first test that needs them for minutes, and the tests
    that use them run last (``pytest_collection_modifyitems``)."""

    def __init__(self) -> None:
        self.made: Path | None = None
        self.jobs: dict[str, subprocess.Popen] = {}
        self.waiters: dict[str, threading.Thread] = {}
        self.closing = threading.Event()
        self.model: PSFusion | None = None

    @property
    def root(self) -> Path:
        if self.made is None:
            self.made = Path(tempfile.mkdtemp(prefix="psfusion-test-artifacts-"))
        return self.made

    def det_model(self) -> PSFusion:
        if self.model is None:
            self.model = deterministic_weights(PSFusion()).eval()
        return self.model

    def checkpoint(self) -> Path:
        """An official-layout ``best_model.pth`` (``{'MTAN': ..., 'optimizer': ..., 'ep': ...}``)."""
        path = self.root / "ckpt" / "best_model.pth"
        if not path.exists():
            path.parent.mkdir()
            model = self.det_model()
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            torch.save({"MTAN": model.state_dict(), "optimizer": optimizer.state_dict(), "ep": 12, "total_it": 3456,
                        "best_mIou": np.float64(0.7812)}, path)
        return path

    def aoti_command(self) -> list[str]:
        return [str(BIN / "psfusion-export"), "--checkpoint", str(self.checkpoint()), "--backend", "compile",
                "--precision", "fp32", "--network-size", "64x96", "--device", "cpu", "-o", str(self.aoti_path())]

    def aoti_path(self) -> Path:
        return self.root / "engines" / "psfusion_fp32_64x96.pt2"

    def train_command(self) -> list[str]:
        from psfusion_ros.harness.synthetic import write_msrs_dataset

        data = self.train_data()
        if not data.exists():
            write_msrs_dataset(data, train=8, test=2, height=96, width=128)
        return [str(BIN / "psfusion-train"), "--dataroot", str(data), "--out", str(self.root / "train" / "run"),
                "--epochs", "10", "--eval-every", "5", "--preview-every", "5", "--workers", "1", *TRAIN_ARGS]

    def train_data(self) -> Path:
        return self.root / "train" / "msrs"

    def trained_checkpoint(self) -> Path:
        return self.root / "train" / "run" / "last.pth"

    def onnx_command(self) -> list[str]:
        """The trained checkpoint through the ONNX exporter, kept although it misses an unreachable threshold."""
        return [str(BIN / "psfusion-export"), "--checkpoint", str(self.trained_checkpoint()), "--backend", "onnx",
                "--network-size", "64x96", "--device", "cpu", "--min-psnr", "1000", "--force",
                "-o", str(self.onnx_path())]

    def onnx_path(self) -> Path:
        """In the job's own folder: the AOTInductor export may be writing its ``.partial`` file in engines/."""
        return self.root / "onnx" / "psfusion_trained_64x96.onnx"

    def start(self, name: str) -> None:
        if name in self.jobs or name in self.waiters:
            return
        if name == "onnx":  # exports what the training run leaves: starts when it ends
            self.start("train")
            self.waiters[name] = threading.Thread(target=self._after_training, daemon=True)
            self.waiters[name].start()
            return
        self._launch(name, self.aoti_command() if name == "aoti" else self.train_command())

    def _launch(self, name: str, command: list[str]) -> None:
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        (self.root / "engines").mkdir(exist_ok=True)
        with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
            self.jobs[name] = subprocess.Popen(command, stdout=out, stderr=err, preexec_fn=_low_priority_group)

    def _after_training(self) -> None:
        if self.jobs["train"].wait() == 0 and not self.closing.is_set():
            self._launch("onnx", self.onnx_command())

    def result(self, name: str) -> tuple[int, str, str]:
        self.start(name)
        if name in self.waiters:
            self.waiters[name].join(timeout=1800)
            if name not in self.jobs:
                return 1, "", "the training run it exports failed:\n" + "".join(self.result("train")[1:])[-3000:]
        code = self.jobs[name].wait(timeout=1800)
        folder = self.root / name
        return code, (folder / "stdout").read_text(), (folder / "stderr").read_text()

    def close(self) -> None:
        self.closing.set()
        for waiter in self.waiters.values():
            if "train" in self.jobs and self.jobs["train"].poll() is None:
                os.killpg(self.jobs["train"].pid, signal.SIGKILL)
            waiter.join(timeout=60)
        for job in self.jobs.values():
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
        if self.made is not None:
            shutil.rmtree(self.made, ignore_errors=True)


BACKGROUND = Background()
NEEDS = {"aoti_artifact": "aoti", "trained_run": "train", "onnx_artifact": "onnx"}


def _needs(item: pytest.Item) -> set[str]:
    return {NEEDS[name] for name in getattr(item, "fixturenames", ()) if name in NEEDS}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set().union(*map(_needs, items))
    for name in ("aoti", "train", "onnx"):
        if name in wanted:
            BACKGROUND.start(name)
    items.sort(key=lambda item: bool(_needs(item)))  # stable: file order otherwise; the artifacts are ready by then


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    BACKGROUND.close()


@pytest.fixture(scope="session")
def det_model() -> PSFusion:
    return BACKGROUND.det_model()


@pytest.fixture(scope="session")
def official_checkpoint() -> Path:
    return BACKGROUND.checkpoint()


@pytest.fixture(scope="session")
def aoti_artifact() -> Path:
    """An AOTInductor package (fp32, 64x96, CPU) built once per session through psfusion-export (~2 minutes)."""
    code, stdout, stderr = BACKGROUND.result("aoti")
    assert code == 0, stdout + stderr
    assert "wrote" in stdout and "backend:=compile" in stdout
    return BACKGROUND.aoti_path()


@pytest.fixture(scope="session")
def trained_run() -> dict[str, Any]:
    """``psfusion-train`` for 10 epochs on a tiny generated MSRS-layout set (8 train, 2 test pairs of 96x128, no
    bi/bd/mask folders), evaluated every 5 epochs: the acceptance run of the training issue (~1 minute)."""
    code, stdout, stderr = BACKGROUND.result("train")
    assert code == 0, stdout + stderr[-3000:]
    return {"data": BACKGROUND.train_data(), "out": BACKGROUND.root / "train" / "run", "stderr": stderr}


@pytest.fixture(scope="session")
def onnx_artifact() -> dict[str, Any]:
    """``psfusion-export --backend onnx`` of the training run's ``last.pth`` with an accuracy threshold it cannot
    reach and ``--force`` (the one ONNX export of the session's CLI tests, ~40 s)."""
    code, stdout, stderr = BACKGROUND.result("onnx")
    assert code == 0, stdout + stderr[-3000:]
    return {"path": BACKGROUND.onnx_path(), "checkpoint": BACKGROUND.trained_checkpoint(), "stdout": stdout,
            "stderr": stderr}
