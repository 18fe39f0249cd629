"""Shared fixtures. Small images (64x96) keep the real network around a second per pass on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import deterministic_weights
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
