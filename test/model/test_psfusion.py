"""PSFusion's structure and numbers against the official implementation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import DATA_DIR, deterministic_pair
from psfusion_ros import PSFusion
from psfusion_ros.constants import PARAMETER_COUNT, STATE_DICT_ENTRIES
from psfusion_ros.model.blocks import FReLU
from psfusion_ros.model.fusion import GEFM

# sha256 of "name:shape" lines (sorted) of the reference PSF(9) state dict, computed from the
# reference code (Linfeng-Tang/PSFusion PSF.py with torchvision 0.29.1).
REFERENCE_STATE_FINGERPRINT = "51989d74e4666b430cd2cb7dedc74147cf51dc0a09faa97116fe9bede1f21fbb"
OUTPUT_NAMES = ("semantic", "binary", "boundary", "fused", "vi", "ir")


def test_state_dict_matches_official_names_and_shapes() -> None:
    model = PSFusion(num_classes=9)
    state = model.state_dict()
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(state.items()))
    assert len(state) == STATE_DICT_ENTRIES
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNT
    assert hashlib.sha256(text.encode()).hexdigest() == REFERENCE_STATE_FINGERPRINT


def test_checkpoint_names_of_torchvision_trunk_and_typos_are_kept() -> None:
    state = PSFusion().state_dict()
    assert state["encoder_rgb_layer6.2.bn2.running_var"].shape == (512,)
    assert state["encoder_thermal_layer4.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["encoder_thermal_conv1.SFEB1.0.weight"].shape == (32, 1, 7, 7)
    assert state["classfier.boundary_conv1.conv.weight"].shape == (64, 128, 1, 1)  # unused, but stored
    assert state["high_fuse6.obj_fuse.gamma1"].shape == (1,)


def test_num_classes_changes_only_the_semantic_head() -> None:
    a, b = PSFusion(9).state_dict(), PSFusion(4).state_dict()
    differing = {k for k in a if a[k].shape != b[k].shape}
    assert differing == {"classfier.semantic_conv2.weight", "classfier.semantic_conv2.bias"}


def test_forward_matches_reference_outputs(det_model: PSFusion) -> None:
    """Golden outputs were produced by the reference code with the same closed-form weights."""
    golden = np.load(DATA_DIR / "reference_outputs_64x96.npz")
    vi, ir = deterministic_pair(64, 96)
    with torch.no_grad():
        out = det_model(vi, ir)
    assert out._fields == OUTPUT_NAMES
    for name in OUTPUT_NAMES:
        ours = getattr(out, name).numpy()
        assert ours.shape == golden[name].shape, name
        assert np.abs(ours - golden[name]).max() < 1e-4, name


def test_forward_shapes_ranges_and_batch_independence(det_model: PSFusion) -> None:
    vi, ir = deterministic_pair(64, 96)
    vi2, ir2 = vi.flip(-1), ir.flip(-2)
    with torch.no_grad():
        single = det_model(vi2, ir2)
        batch = det_model(torch.cat([vi, vi2]), torch.cat([ir, ir2]))
    assert batch.semantic.shape == (2, 9, 64, 96)
    assert batch.binary.shape == batch.boundary.shape == (2, 2, 64, 96)
    for image in (batch.fused, batch.vi, batch.ir):
        assert image.shape == (2, 1, 64, 96)
        assert image.min() >= 0 and image.max() <= 1
    for a, b in zip(single, batch):
        torch.testing.assert_close(a[0], b[1], atol=1e-5, rtol=1e-4)


def test_non_multiple_of_32_input_is_rejected_by_shape(det_model: PSFusion) -> None:
    with pytest.raises(RuntimeError), torch.no_grad():
        det_model(torch.rand(1, 3, 60, 96), torch.rand(1, 1, 60, 96))


def test_gefm_attention_equals_explicit_softmax_of_kt_q() -> None:
    torch.manual_seed(0)
    gefm = GEFM(128, 64).eval()
    with torch.no_grad():
        gefm.gamma1.fill_(0.7)
        gefm.gamma2.fill_(-0.3)
        x, y = torch.randn(2, 64, 6, 8), torch.randn(2, 64, 6, 8)
        q = gefm.Q(torch.cat([x, y], 1)).flatten(2)  # (B, C, N)

        def explicit(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            mask = torch.softmax(torch.bmm(k.flatten(2).transpose(1, 2), q), dim=-1)  # (B, N, N)
            return torch.bmm(v.flatten(2), mask.transpose(1, 2)).view_as(v)

        rgb = 0.7 * explicit(gefm.RGB_K(x), gefm.RGB_V(x)) + y
        inf = -0.3 * explicit(gefm.INF_K(y), gefm.INF_V(y)) + x
        expected = gefm.Second_reduce(torch.cat([rgb, inf], 1))
        torch.testing.assert_close(gefm(x, y), expected, atol=1e-5, rtol=1e-5)


def test_frelu_is_elementwise_max_of_input_and_funnel() -> None:
    torch.manual_seed(1)
    frelu = FReLU(8).eval()
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        funnel = frelu.bn_frelu(F.conv2d(x, frelu.conv_frelu.weight, frelu.conv_frelu.bias, padding=1, groups=8))
        expected = torch.stack([x, funnel]).max(dim=0).values
        torch.testing.assert_close(frelu(x), expected)
