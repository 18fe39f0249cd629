"""Precision policies on the real network (64x96): which blocks compute in which dtype, and what that changes."""

from __future__ import annotations

import pytest
import torch

from psfusion_ros import PSFusion
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.precision import MIXED_FP32_BLOCKS, POLICIES, apply_mixed_precision, blocks, called_modules
from psfusion_ros.pipeline.engines.base import InferenceOutput, agreement
from psfusion_ros.tools.backend_timing import validation_pair

NET = (64, 96)


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return validation_pair(NET, torch.device("cpu"))


def _output_dtypes(graph: InferenceGraph, pair) -> dict[str, set[torch.dtype]]:
    """The dtype each top-level module produced during one pass."""
    seen: dict[str, set[torch.dtype]] = {}
    handles = []
    for name, module in called_modules(graph.net):
        def hook(_m, _a, out, name=name) -> None:
            outs = out if isinstance(out, (tuple, list)) else (out,)
            seen.setdefault(name, set()).update(o.dtype for o in outs if isinstance(o, torch.Tensor))
        handles.append(module.register_forward_hook(hook))
    with torch.inference_mode():
        graph(*pair)
    for h in handles:
        h.remove()
    return seen


def test_every_used_module_belongs_to_exactly_one_block() -> None:
    model = PSFusion()
    groups = blocks(model)
    members = [m for names in groups.values() for m in names]
    used = {name for name, _ in model.named_children()} - {"pred_vi", "pred_ir"}
    assert sorted(members) == sorted(used)
    assert groups["encoder_rgb_stem"] == ["encoder_rgb_conv1", "encoder_rgb_bn1", "encoder_rgb_relu",
                                          "encoder_rgb_maxpool"]
    assert set(MIXED_FP32_BLOCKS) <= set(groups)
    with pytest.raises(ValueError, match="unknown blocks \\['low_fuse9'\\]"):
        apply_mixed_precision(PSFusion(), torch.bfloat16, ["low_fuse9"])


def test_fp32_blocks_compute_in_fp32_and_the_rest_in_bf16(det_model: PSFusion, pair) -> None:
    graph = InferenceGraph(det_model, "bf16", fp32_blocks=("low_fuse1", "encoder_thermal_stem", "to_fused_seg"))
    dtypes = _output_dtypes(graph, pair)
    for name in ("low_fuse1", "encoder_thermal_conv1", "encoder_thermal_bn1", "to_fused_seg"):
        assert dtypes[name] == {torch.float32}, (name, dtypes[name])
    for name in ("low_fuse2", "encoder_rgb_conv1", "encoder_thermal_layer3", "SIM1", "rec_decoder"):
        assert dtypes[name] == {torch.bfloat16}, (name, dtypes[name])
    assert next(det_model.low_fuse2.parameters()).dtype == torch.float32  # the caller's model is not cast


def test_a_network_all_in_fp32_blocks_is_exactly_fp32(det_model: PSFusion, pair) -> None:
    """Blocks kept in fp32 keep their exact weights (not rounded through bf16), so the casts alone change nothing."""
    everything = InferenceGraph(det_model, "bf16", fp32_blocks=tuple(blocks(det_model)))
    nothing = InferenceGraph(det_model, "bf16", fp32_blocks=())
    with torch.inference_mode():
        reference = InferenceOutput(*InferenceGraph(det_model, "fp32")(*pair))
        assert agreement(reference, InferenceOutput(*everything(*pair)))["fused_psnr_db"] == 200.0
        assert agreement(reference, InferenceOutput(*nothing(*pair)))["fused_psnr_db"] < 200.0


def test_the_named_policies(det_model: PSFusion, pair) -> None:
    assert POLICIES["fp32"].fp32_blocks == () and POLICIES["bf16"].fp32_blocks == MIXED_FP32_BLOCKS
    assert POLICIES["fp16"].fp32_blocks == MIXED_FP32_BLOCKS  # fp16 on CUDA uses the same measured set
    graph = InferenceGraph(det_model, "bf16")
    assert graph.policy == POLICIES["bf16"]
    dtypes = _output_dtypes(graph, pair)
    kept = {m for b in MIXED_FP32_BLOCKS for m in blocks(det_model)[b]}
    for name, seen in dtypes.items():
        assert seen == ({torch.float32} if name in kept else {torch.bfloat16}), (name, seen)
    assert POLICIES["bf16"].describe() == {"name": "bf16", "dtype": "bfloat16", "fp32_blocks": list(MIXED_FP32_BLOCKS)}


def test_the_policy_holds_under_torch_export(det_model: PSFusion, pair) -> None:
    """AOTInductor and TensorRT start from torch.export: the block casts must be in the exported graph."""
    graph = InferenceGraph(det_model, "bf16", fp32_blocks=("SIM2",))
    with torch.inference_mode():
        exported = torch.export.export(graph, pair, strict=False)
        eager = graph(*pair)
        again = exported.module()(*pair)
    casts = [n for n in exported.graph.nodes if n.op == "call_function" and "to" in str(n.target)]
    assert casts
    assert torch.equal(eager[0], again[0]) and torch.equal(eager[1], again[1])
