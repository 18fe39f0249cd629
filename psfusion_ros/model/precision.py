"""Precision policies: which PSFusion blocks keep fp32 while the rest of the network runs in bf16 or fp16.

Casting the whole network to bf16 is 2-4x faster on a CPU, but its error depends on the weights.
``psfusion-bench precision`` measures each block's share of that error by running it alone in fp32, and grows the
fp32 set until every weight set given reaches the targets; :data:`MIXED_FP32_BLOCKS` is what it chose, with the
figures in the README (Precision policy).
A block is a top-level part of the network (an encoder stage, a fusion module, a decoder, a head); a block in
fp32 casts its inputs up on entry, the next low-precision block casts them down again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

#: What a lower-precision policy must keep against eager fp32 on the bench pair (``psfusion-bench backends``).
TARGET_FUSED_PSNR_DB = 40.0
TARGET_MASK_AGREEMENT = 0.995

#: Blocks kept in fp32 by ``bf16`` and ``fp16``. Measured at 480x640 (``psfusion-bench precision``, README: Precision
#: policy): a second fusion-only checkpoint reached 99.40 % mask agreement all in bf16; the classifier head in fp32
#: lifts it to 99.70 % for <= 6 ms (the thermal stem: 99.87 % for ~180 ms); the fused-image head is the largest PSNR
#: gain on trained weights (+0.5-1.8 dB) at ~0.3 % of the time.
MIXED_FP32_BLOCKS: tuple[str, ...] = ("pred_fusion", "classfier")


@dataclass(frozen=True)
class PrecisionPolicy:
    """A named precision: the dtype most of the network runs in, and the blocks that stay fp32."""

    name: str
    dtype: torch.dtype
    fp32_blocks: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        """What an artifact's sidecar records, so a package built under another policy is recognisable."""
        return {"name": self.name, "dtype": str(self.dtype).removeprefix("torch."),
                "fp32_blocks": list(self.fp32_blocks)}


POLICIES = {
    "fp32": PrecisionPolicy("fp32", torch.float32),
    "bf16": PrecisionPolicy("bf16", torch.bfloat16, MIXED_FP32_BLOCKS),
    "fp16": PrecisionPolicy("fp16", torch.float16, MIXED_FP32_BLOCKS),
}


def block_of(module_name: str) -> str:
    """The block a top-level module belongs to: the encoder stem (conv1, bn1, relu, maxpool) is one block per
    modality, every other top-level module is its own block."""
    for modality in ("rgb", "thermal"):
        prefix = f"encoder_{modality}_"
        if module_name.startswith(prefix):
            part = module_name.removeprefix(prefix)
            return module_name if part.startswith("layer") else f"{prefix}stem"
    return module_name


def blocks(model: nn.Module) -> dict[str, list[str]]:
    """Block name → the top-level modules in it, in the network's order (the unused image heads left out)."""
    out: dict[str, list[str]] = {}
    for name, _ in model.named_children():
        if name not in ("pred_vi", "pred_ir"):
            out.setdefault(block_of(name), []).append(name)
    return out


def called_modules(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The top-level modules as the network calls them: a ModuleList is iterated, not called, so its items."""
    out: list[tuple[str, nn.Module]] = []
    for name, module in net.named_children():
        if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            out += [(name, item) for item in module.children()]
        else:
            out.append((name, module))
    return out


def _cast_inputs(module: nn.Module, args: tuple, *, dtype: torch.dtype) -> tuple:
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def apply_mixed_precision(net: nn.Module, dtype: torch.dtype, fp32_blocks: Iterable[str]) -> nn.Module:
    """Cast ``net`` (fp32, in place) to ``dtype`` except ``fp32_blocks``, whose weights keep their exact values;
    every top-level module with weights casts its inputs to its own dtype on entry, so the blocks can be mixed
    freely. Works under torch.compile and torch.export (the casts become part of the graph)."""
    groups = blocks(net)
    unknown = sorted(set(fp32_blocks) - set(groups))
    if unknown:
        raise ValueError(f"unknown blocks {unknown}; PSFusion's blocks are {sorted(groups)}")
    keep = {name for block in fp32_blocks for name in groups[block]}
    for name, module in called_modules(net):
        module_dtype = torch.float32 if name in keep else dtype
        module.to(module_dtype)
        if any(True for _ in module.parameters()):
            module.register_forward_pre_hook(functools.partial(_cast_inputs, dtype=module_dtype))
    return net


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype a block computes in (that of its first weight)."""
    return next(module.parameters()).dtype
