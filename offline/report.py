"""The report of ``churnstream evaluate``: ``report.json``, ``report.md`` and PNG plots
(lift curve, precision-recall curve, metrics over anchors, calibration) in a folder.
Plots need matplotlib (the ``eval`` extra); without it the report says so."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluation import pooled_lift_curve, pr_curve

HEADLINE = ("pr_auc", "rocauc", "lift_at_5", "precision_at_5", "recall_at_5", "lift_at_10",
            "lift_at_20", "brier")


def _fmt(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _reasons(by_reason: dict[str, int]) -> str:
    return f" ({', '.join(f'{r}: {n:,}' for r, n in by_reason.items())})" if by_reason else ""


def markdown(report: dict[str, Any], plots: list[str]) -> str:
    cfg, log = report["config"], report["log"]
    names = list(report["pooled"])
    lines = [
        "# churnstream evaluation", "",
        f"Log: {log['events']:,} events, {log['users']:,} users, clock at {log['clock']}; "
        f"{log['rejected_rows']:,} rows failed validation"
        f"{_reasons(log['rejected_by_reason'])}. Horizon H = {cfg['horizon_days']} "
        f"days; an evaluation anchor every {cfg['every_days']} days; training snapshots "
        f"sampled at {cfg['sample_rate']:.4g} per user and day "
        f"({log['training_examples']:,} released). Ran in {report['timing']['seconds']} s "
        f"({report['timing']['events_per_second']:,} events/s).", "",
        "Each anchor T ranks every user active in (T - H, T]; label 1 = no event in "
        "(T, T + H]. Precision/Recall/Lift@K: each anchor targets its own top K, hits "
        "summed; PR-AUC and ROC-AUC: mean over anchors; Brier: over all rows.", ""]
    for title, key, anchors in (
            ("Pooled", "pooled", report["pooled_anchors"]),
            ("Steady state (the last third of those anchors)", "final",
             report["final_anchors"])):
        span = f"{anchors[0][:10]} .. {anchors[-1][:10]}" if anchors else "none"
        lines += [f"### {title}: {len(anchors)} anchors, {span}", "",
                  "| scorer | " + " | ".join(HEADLINE) + " |",
                  "|---|" + "---:|" * len(HEADLINE)]
        for name in names:
            m = report[key][name]
            lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k, math.nan))
                                                    for k in HEADLINE) + " |")
        lines.append("")
    lines += ["Scorers: `live:<pipeline>` is what the system serves (the cold-start rule "
              f"until the model has {cfg['min_labels']} labels and ranks the recent ones at "
              "least as well as the rule, then the online model); `rule` the "
              "cold-start rule alone; `recency` days since the last event; `hgb` batch "
              "HistGradientBoosting retrained at each anchor on the released snapshots.", "",
              "## Per anchor: Lift@5 % / PR-AUC", "",
              "| anchor | users | churned | " + " | ".join(names) + " |",
              "|---|---:|---:|" + "---:|" * len(names)]
    for a in report["anchors"]:
        cells = []
        for name in names:
            m = a["scorers"].get(name)
            cells.append(f"{_fmt(m['lift_at_5'])} / {_fmt(m['pr_auc'])}" if m else "–")
        lines.append(f"| {a['anchor'][:10]} | {a['users']} | {a['churned']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Calibration (pooled)", ""]
    for name, rows in report["calibration"].items():
        lines += [f"`{name}`: " + ", ".join(
            f"[{r['lo']:.1f}, {r['hi']:.1f}) n={r['n']} predicted {_fmt(r['predicted'])} "
            f"observed {_fmt(r['observed'])}" for r in rows if r["n"]), ""]
    lines += ["## Online models (prequential, on the released snapshots)", ""]
    for name, m in report["models"].items():
        lines.append(f"- `{name}`: {int(m['examples']):,} examples, ROC-AUC "
                     f"{_fmt(m['rocauc'])}, log-loss {_fmt(m['logloss'])}, Lift@5 % "
                     f"{_fmt(m['lift_at_5'])}")
    lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    else:
        lines += ["(No plots: install the `eval` extra for matplotlib.)", ""]
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """Write report.json, report.md and the plots; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    parts = report.pop("_parts", {})
    plots = _plots(report, parts, out)
    files = [out / "report.json", out / "report.md", *(out / p for p in plots)]
    (out / "report.json").write_text(json.dumps(_clean(report), indent=1) + "\n")
    (out / "report.md").write_text(markdown(report, plots))
    return files


def _clean(v: Any) -> Any:
    """NaN (a metric undefined for one class) becomes null: JSON has no NaN."""
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _plots(report: dict[str, Any],
           parts: dict[str, list[tuple[np.ndarray, np.ndarray]]], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    # the candidates alone (cand:*) are in the tables; the plots show what was served
    # and the baselines
    names = [n for n in parts if parts[n] and not n.startswith("cand:")]
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        curve = pooled_lift_curve(parts[name], points=100)
        ax.plot([k * 100 for k, _ in curve], [lift for _, lift in curve], label=name)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="users targeted at each anchor (%)", ylabel="lift",
           title="Lift curve (pooled anchors)")
    ax.legend()
    written.append(_save(fig, out, "lift_curve.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        recall, precision = pr_curve(np.concatenate([s for s, _ in parts[name]]),
                                     np.concatenate([y for _, y in parts[name]]))
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision",
           title="Precision-recall (rows of all pooled anchors)")
    ax.legend()
    written.append(_save(fig, out, "pr_curve.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for metric, ax in zip(("pr_auc", "lift_at_5"), axes, strict=True):
        for name in names:
            pts = anchor_series(report, name, metric)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set(title=f"{metric} per anchor", xlabel="anchor")
        ax.tick_params(axis="x", rotation=45)
    axes[0].legend()
    written.append(_save(fig, out, "metrics_over_anchors.png"))

    written.append(_reliability(plt, report, out))
    return written



def _reliability(plt: Any, report: dict[str, Any], out: Path) -> str:
    """Observed churn rate per predicted-probability bin, with the Brier score in the
    legend and the rows per bin below (a bin of ten rows says little)."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for name, rows in report["calibration"].items():
        if name.startswith("cand:"):
            continue
        cal = [(r["predicted"], r["observed"], r["n"], (r["lo"] + r["hi"]) / 2)
               for r in rows if r["n"]]
        brier = report["pooled"].get(name, {}).get("brier", math.nan)
        line, = ax.plot([c[0] for c in cal], [c[1] for c in cal], marker="o",
                        label=f"{name} (Brier {_fmt(brier)})")
        hist.plot([c[3] for c in cal], [c[2] for c in cal], marker=".",
                  color=line.get_color())
    ax.set(ylabel="observed churn rate", title="Reliability (pooled anchors)",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    hist.set(xlabel="predicted churn probability", ylabel="rows per bin", yscale="log")
    return _save(fig, out, "calibration.png")


def anchor_series(report: dict[str, Any], name: str, metric: str
                  ) -> list[tuple[datetime.date, float]]:
    """(anchor date, metric) of one scorer in time order, as dates (not strings: as text,
    matplotlib placed the anchors of a scorer that starts late before the others').

    >>> r = {"anchors": [{"anchor": "2020-03-01T00:00:00Z", "scorers": {"a": {"m": 1}}},
    ...                  {"anchor": "2019-12-01T00:00:00Z", "scorers": {"a": {"m": 2}}}]}
    >>> [(str(d), v) for d, v in anchor_series(r, "a", "m")]
    [('2019-12-01', 2), ('2020-03-01', 1)]
    """
    return sorted((datetime.date.fromisoformat(a["anchor"][:10]), a["scorers"][name][metric])
                  for a in report["anchors"] if name in a["scorers"])


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name
