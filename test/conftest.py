"""Shared fixtures. Small images (64x96) keep the real network around a second per pass on a CPU.

Every ROS process a test starts (and the test process itself) uses a private DDS domain discovered on loopback
only, so parallel runs and other ROS software on the machine never see each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ["ROS_DOMAIN_ID"] = str(50 + os.getpid() % 150)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import numpy as np
import pytest
import torch

from helpers import TRAIN_ARGS, deterministic_weights
from psfusion_ros.model import PSFusion


@pytest.fixture(scope="session")
def det_model() -> PSFusion:
    return deterministic_weights(PSFusion()).eval()


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory: pytest.TempPathFactory, det_model: PSFusion) -> Path:
    """An official-layout ``best_model.pth`` (``{'MTAN': ..., 'optimizer': ..., 'ep': ...}``)."""
    path = tmp_path_factory.mktemp("ckpt") / "best_model.pth"
    optimizer = torch.optim.SGD(det_model.parameters(), lr=1e-3, momentum=0.9)
    torch.save(
        {
            "MTAN": det_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ep": 12,
            "total_it": 3456,
            "best_mIou": np.float64(0.7812),
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def aoti_artifact(tmp_path_factory: pytest.TempPathFactory, official_checkpoint: Path) -> Path:
    """An AOTInductor package (fp32, 64x96, CPU) built once per session through psfusion-export (~1 minute)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("engines") / "psfusion_fp32_64x96.pt2"
    result = subprocess.run([str(Path(sys.executable).parent / "psfusion-export"), "--checkpoint",
                             str(official_checkpoint), "--backend", "compile", "--precision", "fp32", "--network-size",
                             "64x96", "--device", "cpu", "-o", str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote" in result.stdout and "backend:=compile" in result.stdout
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``psfusion-train`` for 10 epochs on a tiny generated MSRS-layout set (8 train, 2 test pairs of 96x128, no
    bi/bd/mask folders), evaluated every 5 epochs: the acceptance run of the training issue (~20 s)."""
    import subprocess
    import sys

    from psfusion_ros.harness.synthetic import write_msrs_dataset

    root = tmp_path_factory.mktemp("train")
    data = write_msrs_dataset(root / "msrs", train=8, test=2, height=96, width=128)
    out = root / "run"
    result = subprocess.run([str(Path(sys.executable).parent / "psfusion-train"), "--dataroot", str(data), "--out",
                             str(out), "--epochs", "10", "--eval-every", "5", "--preview-every", "5", "--workers", "1",
                             *TRAIN_ARGS], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return {"data": data, "out": out, "stderr": result.stderr}
