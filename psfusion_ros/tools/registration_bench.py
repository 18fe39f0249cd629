"""``psfusion-bench registration``: the estimator and the baselines on seeded rig warps of real aligned pairs.

Families (:mod:`psfusion_ros.harness.rig_warps`): ``control`` (thermal synthesized from the visible image,
exact truth) and ``real`` (the recorded infrared warped; scored by consistency: the estimate on the warped pair
against the same method's estimate on the recorded pair composed with the warp, because public pairs are
aligned only to a few pixels). Errors are in RGB pixels at the corners of the thermal footprint (README:
Calibrating a rig). ``--joint N``: one rig warp applied to N pairs, estimated jointly.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from psfusion_ros.errors import DataError
from psfusion_ros.harness.rig_warps import canvas_size, corner_error_px, make_case, random_rig_homography
from psfusion_ros.io.image_files import matched_names, read_image
from psfusion_ros.pipeline.auto_registration import estimate_registration
from psfusion_ros.tools.registration_baselines import baselines, nominal

OURS = "psfusion_ros"
FAMILIES = ("control", "real")


@dataclass
class Pair:
    name: str
    ir: np.ndarray  # (H, W) uint8
    vi: np.ndarray  # (H, W, 3) uint8


def load_pairs(ir_dirs: Sequence[str], vi_dirs: Sequence[str], size: tuple[int, int] | None) -> list[Pair]:
    """Aligned pairs matched by file name, resized to ``size`` (both images alike, so alignment is kept)."""
    if len(ir_dirs) != len(vi_dirs):
        raise DataError("give --ir and --vi the same number of times")
    pairs = []
    for ir_dir, vi_dir in zip(ir_dirs, vi_dirs):
        names, _ = matched_names(Path(ir_dir), Path(vi_dir))
        for name in names:
            ir, vi = read_image(Path(ir_dir) / name, "L"), read_image(Path(vi_dir) / name, "RGB")
            if ir.shape != vi.shape[:2]:
                raise DataError(f"{ir_dir}/{name}: infrared {ir.shape[::-1]} and visible {vi.shape[1::-1]} differ in "
                                "size: the bench needs aligned pairs")
            if size is not None:
                ir = cv2.resize(ir, size[::-1], interpolation=cv2.INTER_AREA)
                vi = cv2.resize(vi, size[::-1], interpolation=cv2.INTER_AREA)
            pairs.append(Pair(f"{Path(ir_dir).parent.name}/{name}", ir, vi))
    if not pairs:
        raise DataError(f"no pairs with matching names in {', '.join(ir_dirs)} and {', '.join(vi_dirs)}")
    return pairs


def _run(method: str, thermals: list[np.ndarray], rgbs: list[np.ndarray], start: np.ndarray
         ) -> tuple[np.ndarray | None, float, dict[str, Any]]:
    """(homography or None on failure, seconds, extras)."""
    t0 = time.perf_counter()
    try:
        if method == OURS:
            est = estimate_registration(thermals, rgbs)
            extra = {"confidence": est.confidence, "reason": est.reason}
            return est.homography, time.perf_counter() - t0, extra
        H = baselines()[method](thermals[0], rgbs[0], start)
        return H, time.perf_counter() - t0, {}
    except Exception as exc:  # noqa: BLE001 - a baseline that fails is a counted failure, not the bench's end
        return None, time.perf_counter() - t0, {"failure": f"{type(exc).__name__}: {exc}"[:200]}


def _score(estimate: np.ndarray | None, truth: np.ndarray, thermal_size: tuple[int, int],
           rgb_size: tuple[int, int]) -> float:
    if estimate is None:
        return float("inf")
    error = corner_error_px(estimate, truth, thermal_size, rgb_size)
    return error if np.isfinite(error) else float("inf")


def run_bench(pairs: list[Pair], methods: list[str], cases_per_pair: int, seed: int, joint: int,
              progress: bool = True) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    recorded: dict[tuple[str, str], np.ndarray | None] = {}
    jobs = [(fam, i, k) for fam in FAMILIES for i in range(len(pairs)) for k in range(cases_per_pair)]
    for fam, i, k in tqdm(jobs, desc="registration cases", unit="case", disable=not progress):
        pair = pairs[i]
        rng = np.random.default_rng([seed, i, k, FAMILIES.index(fam)])
        case = make_case(f"{pair.name}#{k}", fam, pair.ir, pair.vi, rng)
        rgb_size, thermal_size = case.rgb.shape[:2], case.thermal.shape
        start = nominal(thermal_size, rgb_size)
        record: dict[str, Any] = {"family": fam, "case": case.name, "warp": vars(case.warp), "methods": {}}
        for method in methods:
            H, seconds, extra = _run(method, [case.thermal], [case.rgb], start)
            entry = {"seconds": round(seconds, 3), **extra, "error_vs_warp_px": _score(H, case.homography,
                                                                                        thermal_size, rgb_size)}
            if fam == "real":
                key = (method, pair.name)
                if key not in recorded:  # the same method on the pair as recorded (once per pair)
                    recorded[key] = _run(method, [pair.ir], [pair.vi], np.eye(3))[0]
                N = recorded[key]
                entry["error_px"] = _score(H, N @ case.homography, thermal_size, rgb_size) if N is not None else float(
                    "inf")
            else:
                entry["error_px"] = entry["error_vs_warp_px"]
            record["methods"][method] = entry
        records.append(record)
    report: dict[str, Any] = {"benchmark": "registration", "pairs": len(pairs), "cases_per_pair": cases_per_pair,
                              "seed": seed, "cases": records, "summary": summarize(records, methods)}
    if joint > 1:
        report["joint"] = run_joint(pairs, joint, seed)
    return report


def run_joint(pairs: list[Pair], count: int, seed: int) -> dict[str, Any]:
    """One rig warp, ``count`` scenes, estimated jointly by the project's estimator (pairs must share one size)."""
    chosen = pairs[:count]
    if len({p.vi.shape for p in chosen}) != 1:
        raise DataError("--joint needs pairs of one size: pass --size")
    rng = np.random.default_rng([seed, 99])
    rgb_size = chosen[0].vi.shape[:2]
    rig = random_rig_homography(rng, canvas_size(rgb_size), rgb_size)
    out: dict[str, Any] = {"pairs": len(chosen)}
    for fam in FAMILIES:
        cases = [make_case(p.name, fam, p.ir, p.vi, np.random.default_rng([seed, 99, j]), rig=rig)
                 for j, p in enumerate(chosen)]
        t0 = time.perf_counter()
        est = estimate_registration([c.thermal for c in cases], [c.rgb for c in cases])
        seconds = time.perf_counter() - t0
        thermal_size = cases[0].thermal.shape
        truth = rig[0]
        entry = {"confidence": est.confidence, "seconds": round(seconds, 2),
                 "error_vs_warp_px": _score(est.homography, truth, thermal_size, rgb_size)}
        if fam == "real":
            recorded = estimate_registration([p.ir for p in chosen], [p.vi for p in chosen])
            entry["error_px"] = _score(est.homography, recorded.homography @ truth, thermal_size, rgb_size)
        else:
            entry["error_px"] = entry["error_vs_warp_px"]
        out[fam] = entry
    return out


def _stats(errors: list[float], seconds: list[float]) -> dict[str, Any]:
    e = np.asarray(errors, float)
    finite = e[np.isfinite(e)]
    ranked = np.sort(e)  # order statistics: a failure (inf) ranks last instead of poisoning an interpolation

    def quantile(q: float) -> float:
        return float(ranked[min(len(ranked) - 1, int(np.ceil(q * len(ranked))) - 1)]) if len(ranked) else float("nan")

    return {"cases": len(e), "median_px": quantile(0.5), "p90_px": quantile(0.9),
            "within_2px": float(np.mean(e <= 2)) if len(e) else 0.0,
            "within_5px": float(np.mean(e <= 5)) if len(e) else 0.0,
            "failures": int(len(e) - len(finite)), "seconds_per_pair": float(np.median(seconds)) if seconds else 0.0}


def summarize(records: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for fam in FAMILIES:
        rows = [r for r in records if r["family"] == fam]
        summary[fam] = {}
        for method in methods:
            entries = [r["methods"][method] for r in rows]
            stats = _stats([x["error_px"] for x in entries], [x["seconds"] for x in entries])
            stats["plain_median_px"] = float(np.median([x["error_vs_warp_px"] for x in entries])) if entries else 0.0
            if method == OURS:
                confident = [x for x in entries if x.get("confidence", 0) >= 0.5]
                stats["confident_share"] = len(confident) / max(len(entries), 1)
                stats["confident"] = _stats([x["error_px"] for x in confident], [x["seconds"] for x in confident])
                stats["confident_wrong"] = sum(1 for x in confident if not x["error_px"] <= 5)
            summary[fam][method] = stats
    return summary


def print_report(report: dict[str, Any]) -> None:
    print(f"registration: {report['pairs']} aligned pairs x {report['cases_per_pair']} seeded rig warps per family "
          "(error in RGB px at the thermal footprint's corners; real = consistency with the recorded pair)")
    print(f"{'family':8s} {'method':26s} {'median':>7s} {'p90':>8s} {'<=2px':>6s} {'<=5px':>6s} {'fail':>5s} "
          f"{'s/pair':>7s}")
    for fam, methods in report["summary"].items():
        for method, s in methods.items():
            print(f"{fam:8s} {method:26s} {s['median_px']:7.2f} {s['p90_px']:8.2f} {100 * s['within_2px']:5.0f}% "
                  f"{100 * s['within_5px']:5.0f}% {s['failures']:5d} {s['seconds_per_pair']:7.2f}")
            if method == OURS:
                c = s["confident"]
                print(f"{'':8s} {'  confident only':26s} {c['median_px']:7.2f} {c['p90_px']:8.2f} "
                      f"{100 * c['within_2px']:5.0f}% {100 * c['within_5px']:5.0f}%  {100 * s['confident_share']:.0f}% "
                      f"of cases confident, {s['confident_wrong']} of them > 5 px")
    if "joint" in report:
        j = report["joint"]
        for fam in FAMILIES:
            e = j[fam]
            print(f"joint ({j['pairs']} pairs, one rig) {fam}: {e['error_px']:.2f} px (vs warp "
                  f"{e['error_vs_warp_px']:.2f}), confidence {e['confidence']:.2f}, {e['seconds']:.1f} s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ir", action="append", required=True, help="folder of aligned infrared images (repeatable)")
    parser.add_argument("--vi", action="append", required=True, help="the matching visible folder (repeatable)")
    parser.add_argument("--size", default="480x640", help="resize pairs to HxW first (default 480x640; 'native')")
    parser.add_argument("--cases-per-pair", type=int, default=2, help="seeded rig warps per pair and family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", help=f"comma list (default: {OURS} and every baseline available)")
    parser.add_argument("--joint", type=int, default=10, help="pairs for the one-rig joint test (0: off)")
