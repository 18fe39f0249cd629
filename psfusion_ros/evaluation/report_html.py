"""``report.html`` for psfusion-eval: plots people would rather look at than read, self-contained."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from psfusion_ros.constants import MSRS_CLASSES, MSRS_PALETTE
from psfusion_ros.metrics import METRIC_NAMES
from psfusion_ros.pipeline.color import colorize


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img_png(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _figures(report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["per_pair"]
    figures = []
    fig, axes = plt.subplots(3, 4, figsize=(13, 7))
    for ax, name in zip(axes.ravel(), METRIC_NAMES):
        ax.hist([r["metrics"][name] for r in rows], bins=min(30, max(5, len(rows))), color="tab:blue")
        ax.set_title(f"{name} (mean {report['metrics'][name]:.3f})", fontsize=9)
    fig.suptitle(f"Fusion metrics per pair ({report['profile']} profile)")
    fig.tight_layout()
    figures.append(("Metric distributions", _png(fig)))
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.5))
    ax1.hist([r["pipeline_ms"] for r in rows], bins=30, color="tab:green")
    ax1.set_xlabel("pipeline ms per pair")
    ax1.set_title("Latency (normalize → publishable outputs)")
    stages = {k: max(v["p50"], 1e-3) for k, v in report["timing"].items() if k != "pipeline_total" and v}
    ax2.barh(list(stages), list(stages.values()), color="tab:gray")
    ax2.set_xscale("log")  # the network dwarfs the rest; a log axis keeps every stage readable
    ax2.set_xlabel("p50 ms (log scale)")
    ax2.set_title("Per stage")
    for y, value in enumerate(stages.values()):
        ax2.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    figures.append(("Timing", _png(fig)))
    plt.close(fig)

    if "sync" in report and rows:
        fig, ax = plt.subplots(figsize=(12, 3))
        t0 = rows[0]["rgb_stamp_ns"]
        ax.plot([(r["rgb_stamp_ns"] - t0) / 1e9 for r in rows], [r["offset_ms"] for r in rows], "o", ms=5,
                alpha=0.7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("seconds into the bag")
        ax.set_ylabel("thermal − RGB stamp (ms)")
        ax.set_title("Synchronization offsets")
        fig.tight_layout()
        figures.append(("Sync offsets over time", _png(fig)))
        plt.close(fig)
    checks = report.get("registration", {}).get("per_pair", [])
    if checks:
        fig, ax = plt.subplots(figsize=(12, 3))
        sure = [c for c in checks if c["confidence"] >= 0.5]
        unsure = [c for c in checks if c["confidence"] < 0.5]
        ax.plot([c["index"] for c in sure], [c["residual_px"] for c in sure], "o", color="tab:blue",
                label="confident check")
        ax.plot([c["index"] for c in unsure], [c["residual_px"] for c in unsure], "o", mfc="none", color="tab:gray",
                label="not confident (ignored)")
        ax.axhline(report["registration"]["warn_px"], color="tab:red", lw=1, ls="--", label="registration.warn_px")
        ax.set_xlabel("pair")
        ax.set_ylabel("residual (RGB px)")
        ax.set_title(f"Registration check: {report['registration']['verdict']}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figures.append(("Registration residual", _png(fig)))
        plt.close(fig)
    return figures


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _legend(class_ids: set[int]) -> str:
    """Colour swatches and names of the classes shown in the previews."""
    items = [f"<span class='swatch' style='background:rgb{MSRS_PALETTE[i]}'></span>{html.escape(MSRS_CLASSES[i])}"
             for i in sorted(class_ids) if i < len(MSRS_CLASSES)]
    return "<p class='legend'>" + " ".join(items) + "</p>"


def _header(report: dict[str, Any]) -> str:
    source = report["source"]
    what = (f"bag {source['bag']} ({source['thermal_topic']} + {source['rgb_topic']})" if "bag" in source
            else f"folders {source['ir']} + {source['vi']}")
    weights = (html.escape(str(report["checkpoint"])) if report.get("trained")
               else "<b class='warn'>UNTRAINED seeded weights</b>: the numbers show the data path, not PSFusion")
    flag = " — <b class='warn'>interrupted</b>" if report["interrupted"] else ""
    rows = [("source", html.escape(what)), ("checkpoint", weights),
            ("pipeline", html.escape(report.get("pipeline", ""))),
            ("device", html.escape(f"{report['device']} ({report.get('backend', 'eager')}, {report['precision']})")),
            ("metrics profile", html.escape(f"{report['profile']}: {report.get('profile_source', '')}")),
            ("pairs", f"{report['pairs']} in {report['seconds']} s ({report['pairs_per_second']} pairs/s){flag}"),
            ("skipped inputs", str(report.get("skipped_count", 0))),
            ("blank thermal pairs", str(report.get("blank_thermal_pairs", 0)))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    params = report.get("parameters", {})
    details = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in params.items())
    return (f"<h1>psfusion-eval report</h1><table>{table}</table>"
            f"<details><summary>parameters ({html.escape(str(report.get('params_file', '')))} + flags)</summary>"
            f"<table>{details}</table></details>")


def _live_section(live: dict[str, Any]) -> str:
    from psfusion_ros.evaluation.live import live_figures

    rows = []
    for run in live["runs"]:
        drops = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in run["dropped"].items() if v) or "none"
        latency = run["latency_ms"].get("stamp_to_receipt", {})
        rows.append((f"x{run['rate_factor']:g}", f"{run['published']}/{run['total']} published "
                     f"({'accounted' if run['accounted'] else 'NOT accounted'}); dropped: {drops}; output "
                     f"{run['output_rate_hz']} Hz for {run['input_rate_hz']} Hz in; latency p50 "
                     f"{latency.get('p50', float('nan'))} ms, p95 {latency.get('p95', float('nan'))} ms; node CPU p50 "
                     f"{run['node']['cpu_percent'].get('p50')} %, RSS max {run['node']['rss_mb'].get('max')} MB"))
    html_parts = ["<h2>Live: the bag through the real node</h2>",
                  f"<p>{html.escape(live['vs_offline']['summary'])}; highest sustained rate factor: "
                  f"{live['max_sustained_rate_factor']}</p>", _table(rows)]
    metrics = live["runs"][0].get("metrics")
    if metrics:
        html_parts.append("<h3>Metrics of the published images (mean)</h3>"
                          + _table([(k, f"{v:.4f}") for k, v in metrics.items()]))
    for title, fig in live_figures(live):
        import matplotlib.pyplot as plt

        html_parts.append(f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{_png(fig)}'>")
        plt.close(fig)
    return "".join(html_parts)


def write_html(path: Path, report: dict[str, Any], previews: list[tuple]) -> None:
    parts = [_header(report)]
    parts.append("<h2>Metrics (mean)</h2>" + _table([(k, f"{v:.4f}") for k, v in report["metrics"].items()]))
    if "segmentation" in report:
        seg = report["segmentation"]
        parts.append("<h2>Segmentation</h2>" + _table(
            [("mIoU", f"{seg['mIoU']:.4f}"), ("pixel accuracy", f"{seg['pixel_accuracy']:.4f}")]
            + [(k, "—" if v is None else f"{v:.4f}") for k, v in seg["per_class_IoU"].items()]))
    if "sync" in report:
        s = report["sync"]
        parts.append("<h2>Synchronization</h2>" + _table(
            [("matched pairs", str(s["matched"]))] + [(f"received {k}", str(v)) for k, v in s["received"].items()]
            + [(f"dropped {k}", str(v)) for k, v in s["dropped"].items()]
            + [("resets (bag loops)", str(s["resets"]))]
            + [(f"offset {k} (ms)", f"{v:.3f}") for k, v in s["offset_ms"].items()]))
    reg = report.get("registration")
    if reg and reg["checks"]:
        rows = [("mode", reg["mode"]), ("verdict", reg["verdict"]),
                ("checks", f"{reg['confident_checks']} confident of {reg['checks']}")]
        if "residual_px" in reg:
            rows += [(f"residual {k} (px)", f"{v:.2f}") for k, v in reg["residual_px"].items()]
        parts.append("<h2>Registration</h2>" + _table(rows))
    parts.append("<h2>Timing (ms)</h2>" + _table(
        [(k, f"p50 {v['p50']:.2f}, p95 {v['p95']:.2f}") for k, v in report["timing"].items() if v]))
    if "live" in report:
        parts.append(_live_section(report["live"]))
    if report["pairs"]:
        for title, png in _figures(report):
            parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{png}'>")
    for index, vi, ir, fused, ids in previews:
        strip = np.hstack([vi, np.repeat(ir[:, :, None], 3, axis=2), fused, colorize(ids)])
        parts.append(f"<h3>Pair {index}: visible | infrared | fused | segmentation</h3>"
                     f"<img src='data:image/png;base64,{_img_png(strip)}'>" + _legend(set(np.unique(ids).tolist())))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}img{max-width:100%}.warn{color:#b00}"
             ".swatch{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;border:1px solid #888;"
             "vertical-align:middle}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>psfusion-eval</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
