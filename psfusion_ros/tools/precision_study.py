"""``psfusion-bench precision``: which blocks of PSFusion lose accuracy in bf16/fp16, measured, not guessed.

For every weight set: the whole network in the low precision, then each block alone back in fp32 (its share of
the error), then the blocks added to fp32 one at a time, biggest worst-case gain first, until every weight set
reaches the targets. Eager on the bench pair, against eager fp32 of the same weights; the block timings come
from the same eager runs and say what keeping a block in fp32 costs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from psfusion_ros.errors import ConfigError
from psfusion_ros.model.checkpoint import load_checkpoint
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.precision import TARGET_FUSED_PSNR_DB, TARGET_MASK_AGREEMENT, blocks, called_modules
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.engines.base import InferenceOutput, agreement
from psfusion_ros.tools.backend_timing import validation_pair


def load_weight_set(spec: str) -> tuple[str, PSFusion]:
    """``seed:N`` (a seeded untrained initialisation, the bench's is ``seed:0``) or a checkpoint path."""
    if spec.startswith("seed:"):
        try:
            seed = int(spec.removeprefix("seed:"))
        except ValueError:
            raise ConfigError(f"weight set {spec!r}: expected seed:<integer> or a checkpoint path") from None
        torch.manual_seed(seed)
        return spec, PSFusion().eval()
    if not Path(spec).is_file():
        raise ConfigError(f"weight set {spec!r}: no such checkpoint (or use seed:<integer>)")
    return Path(spec).name, load_checkpoint(spec, num_classes=None).eval()


Targets = tuple[float, float]  # fused PSNR (dB), mask agreement (fraction)
TARGETS: Targets = (TARGET_FUSED_PSNR_DB, TARGET_MASK_AGREEMENT)


def meets_targets(score: dict[str, float], targets: Targets = TARGETS) -> bool:
    return score["fused_psnr_db"] >= targets[0] and score["mask_agreement"] >= targets[1]


def _shortfall(score: dict[str, float], targets: Targets) -> float:
    """How far a score is from the targets (0 when met; 3 dB ~ half the error, or the whole mask allowance):
    the greedy order puts first the blocks that close the most of the worst weight set's gap."""
    psnr = max(0.0, targets[0] - score["fused_psnr_db"]) / 3.0
    mask = max(0.0, targets[1] - score["mask_agreement"]) / max(1e-6, 1 - targets[1])
    return psnr + mask


def _block_times(graph: InferenceGraph, vi: torch.Tensor, ir: torch.Tensor) -> tuple[InferenceOutput, dict]:
    """One eager pass, with the milliseconds each top-level module took (CPU: calls are synchronous)."""
    times: dict[str, float] = {}
    handles = []
    timed = called_modules(graph.net)
    timed += [("classfier", m) for m in graph.net.classfier.children()]  # called through .semantic(), not forward
    for name, module in timed:
        def pre(_m: Any, _a: Any, name: str = name) -> None:
            times[name] = times.get(name, 0.0) - time.perf_counter()

        def post(_m: Any, _a: Any, _o: Any, name: str = name) -> None:
            times[name] += time.perf_counter()

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        with torch.inference_mode():
            output = InferenceOutput(*graph(vi, ir))
    finally:
        for h in handles:
            h.remove()
    return output, {k: v * 1e3 for k, v in times.items()}


def study(weight_specs: list[str], size: tuple[int, int], precision: str = "bf16", targets: Targets = TARGETS,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The per-block measurement and the greedy fp32 set, as a JSON-ready report."""
    if precision not in ("bf16", "fp16"):
        raise ConfigError(f"precision {precision!r}: the study compares bf16 or fp16 with fp32")
    device = torch.device("cuda" if precision == "fp16" else "cpu")
    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("precision fp16 needs a CUDA device; study bf16 on the CPU")
    vi, ir = validation_pair(size, device)
    sets = [load_weight_set(spec) for spec in weight_specs]
    names = list(blocks(sets[0][1]))
    bar = tqdm(total=len(sets) * (len(names) + 2), desc="precision study", unit="run", file=sys.stderr)

    def run(model: PSFusion, fp32_blocks: tuple[str, ...]) -> tuple[InferenceOutput, dict]:
        graph = InferenceGraph(model, precision, fp32_blocks=fp32_blocks).to(device)
        out = _block_times(graph, vi, ir)
        bar.update()
        return out

    reference: dict[str, InferenceOutput] = {}
    per_set: dict[str, Any] = {}
    for label, model in sets:
        reference[label], fp32_ms = _block_times(InferenceGraph(model, "fp32").to(device), vi, ir)
        bar.update()
        low, low_ms = run(model, ())
        row: dict[str, Any] = {"all_low": agreement(reference[label], low), "blocks": {}}
        for block in names:
            out, _ = run(model, (block,))
            row["blocks"][block] = agreement(reference[label], out)
        groups = blocks(model)
        row["block_ms"] = {b: {"fp32": round(sum(fp32_ms.get(m, 0.0) for m in groups[b]), 1),
                               precision: round(sum(low_ms.get(m, 0.0) for m in groups[b]), 1)} for b in names}
        per_set[label] = row
    bar.close()

    def worst_shortfall(block: str) -> float:
        return max(_shortfall(per_set[label]["blocks"][block], targets) for label, _ in sets)

    def extra_ms(block: str) -> float:  # what keeping the block in fp32 costs, mean over the weight sets
        return float(np.mean([per_set[label]["block_ms"][block]["fp32"] - per_set[label]["block_ms"][block][precision]
                              for label, _ in sets]))

    # Greedy: the blocks whose fp32 run alone closes the most of the worst gap first; cumulative sets re-measured.
    # When single blocks already reach the targets on every weight set, the cheapest of them comes first: on a
    # fusion checkpoint the thermal stem (+0.47 % mask, ~180 ms) and the classifier (+0.30 %, <= 6 ms) both did.
    order = sorted(names, key=worst_shortfall)
    sufficient = [b for b in names if worst_shortfall(b) == 0.0]
    if sufficient:
        cheapest = min(sufficient, key=extra_ms)
        order = [cheapest] + [b for b in order if b != cheapest]
    chosen: list[str] = []
    steps = []
    scores = {label: per_set[label]["all_low"] for label, _ in sets}
    for block in order:
        if all(meets_targets(s, targets) for s in scores.values()):
            break
        chosen.append(block)
        scores = {}
        for label, model in sets:
            out, _ = _block_times(InferenceGraph(model, precision, fp32_blocks=tuple(chosen)).to(device), vi, ir)
            scores[label] = agreement(reference[label], out)
        steps.append({"fp32_blocks": list(chosen), "scores": dict(scores)})
        if progress:
            progress(f"fp32 {'+'.join(chosen)}: " + ", ".join(
                f"{label} {s['fused_psnr_db']:.1f} dB / {100 * s['mask_agreement']:.2f} %"
                for label, s in scores.items()))
    return {"benchmark": "precision", "precision": precision, "network_size": list(size), "device": str(device),
            "targets": {"fused_psnr_db": targets[0], "mask_agreement": targets[1]},
            "weight_sets": per_set, "greedy": steps, "fp32_blocks": chosen,
            "met": all(meets_targets(s, targets) for s in scores.values())}


def print_report(report: dict[str, Any]) -> None:
    p = report["precision"]
    labels = list(report["weight_sets"])
    print(f"{p} vs fp32 at {report['network_size'][0]}x{report['network_size'][1]} ({report['device']}, eager): "
          f"fused PSNR dB / mask agreement %, one block at a time in fp32")
    header = f"{'block in fp32':26s} " + " ".join(f"{label[:22]:>22s}" for label in labels)
    print(header + f" {'ms fp32':>8s} {'ms ' + p:>8s}")

    def cell(s: dict[str, float]) -> str:
        return f"{s['fused_psnr_db']:6.1f} / {100 * s['mask_agreement']:6.2f}".rjust(22)

    first = report["weight_sets"][labels[0]]
    print(f"{'(none: all ' + p + ')':26s} " + " ".join(cell(report["weight_sets"][lb]["all_low"]) for lb in labels))
    for block in first["blocks"]:
        ms = first["block_ms"][block]
        print(f"{block:26s} " + " ".join(cell(report["weight_sets"][lb]["blocks"][block]) for lb in labels)
              + f" {ms['fp32']:8.1f} {ms[p]:8.1f}")
    for step in report["greedy"]:
        print(f"{'+'.join(step['fp32_blocks'])[:26]:26s} " + " ".join(cell(step["scores"][lb]) for lb in labels))
    verdict = "meets" if report["met"] else "does NOT meet"
    print(f"smallest greedy fp32 set: {report['fp32_blocks'] or 'none'} ({verdict} {report['targets']['fused_psnr_db']}"
          f" dB / {100 * report['targets']['mask_agreement']:.1f} % on every weight set)")
