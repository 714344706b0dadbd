"""A finished run as people read it: RUN/report.md with its tables and pictures under RUN/plots/.

Accuracy by each breakdown (question type, organ or modality, language, what answered) as bar charts with their
95% intervals; for classification sets, the ROC curve with the model's operating point and a reliability diagram.
Everything is read from the run folder's contract (summary.json, predictions.jsonl, manifest.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vesalius.eval.evaluate import SUMMARY
from vesalius.eval.runner import finished, run_json

_BREAKDOWNS = ("question_type", "organ_or_modality", "language", "answered_by")


def _pct(block: dict, key: str) -> str:
    value, ci = block.get(key), block.get(f"{key}_ci")
    if value is None:
        return "-"
    return f"{100 * value:.1f}" + (f" ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})" if ci else "")


def summary_table(s: dict[str, Any]) -> str:
    closed, open_ = s["closed"], s["open"]
    rows = [
        (
            f"{s['benchmark']} · {s['mode']} · scoring {s['scoring']} · split {s['split']} · {s['n']} questions, "
            f"{s['answered']} answered"
        ),
        "",
        "| | n | accuracy % (95% CI) |",
        "|---|---:|---|",
        f"| overall | {s['n']} | {_pct(s['overall'], 'accuracy')} |",
        f"| closed | {closed['n']} | {_pct(closed, 'accuracy')} |",
        f"| open (exact match) | {open_['n']} | {_pct(open_, 'exact_match')} |",
    ]
    if open_.get("n"):
        rows.append(
            f"\nopen: token F1 {_pct(open_, 'token_f1')}, token recall {_pct(open_, 'token_recall')}, "
            f"BLEU-1 {_pct(open_, 'bleu1')}"
        )
    if c := s.get("classification"):
        rows.append(
            f"\nclassification ({c.get('positive_class', '-')} positive): {c['covered']} of {c['n']} images read by a "
            f"model (coverage {c['coverage']:.2f}); AUROC {_num(c.get('auroc'))}, ECE {_num(c.get('ece'))}, "
            f"sensitivity {_num(c.get('sensitivity'))}, specificity {_num(c.get('specificity'))} at its threshold"
        )
    if s["skipped"]:
        rows.append(f"\n{len(s['skipped'])} malformed item(s) skipped (listed in summary.json)")
    if trained := s.get("manifest", {}).get("predictor", {}).get("trained_on"):
        rows.append(
            "\nThe shipped models learnt from: "
            + "; ".join(f"{name}: {data}" for name, data in trained.items())
            + ". On those data, or images drawn from them, this is not a held-out measurement."
        )
    return "\n".join(rows)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _bars(name: str, groups: dict[str, Any], path: Path) -> Path:
    from vesalius.vision.models.plots import _pyplot, _save

    plt = _pyplot()
    names = sorted(groups, key=lambda g: -groups[g]["n"])[:20]
    acc = [100 * (groups[g]["overall"]["accuracy"] or 0.0) for g in names]
    ci = [groups[g]["overall"].get("accuracy_ci") or [a / 100, a / 100] for g, a in zip(names, acc, strict=True)]
    err = [
        [a - 100 * lo for a, (lo, _) in zip(acc, ci, strict=True)],
        [100 * hi - a for a, (_, hi) in zip(acc, ci, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.5))
    ax.barh(range(len(names)), acc, xerr=err, color="#4878a8", ecolor="black", capsize=3)
    ax.set_yticks(range(len(names)), [f"{g} (n={groups[g]['n']})" for g in names], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 100), xlabel="accuracy % (95% bootstrap interval)", title=f"Accuracy by {name.replace('_', ' ')}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _classification_plots(run: Path, positive: str, plots: Path) -> list[Path]:
    import numpy as np

    from vesalius.vision.models.metrics import auroc, reliability, roc_curve
    from vesalius.vision.models.plots import plot_reliability, plot_roc

    covered = [r for r in finished(run).values() if r.prediction.class_probabilities]
    y = np.array([r.gold == positive for r in covered], dtype=int)
    if not covered or y.min() == y.max():
        return []  # a curve needs both classes among the images a model read
    p = np.array([r.prediction.class_probabilities[positive] for r in covered])
    called = np.array([r.prediction.text == positive for r in covered])
    fpr, tpr, _ = roc_curve(y, p)
    point = (float(called[y == 1].mean()), float((~called[y == 0]).mean()))
    source = covered[0].prediction.source or "model"
    return [
        plot_roc({source: (fpr, tpr, auroc(y, p))}, plots / "roc.png", f"ROC: {positive}", {source: point}),
        plot_reliability(None, reliability(y, p), plots / "calibration.png", f"Calibration: P({positive})"),
    ]


def write_report(run: Path) -> Path:
    summary = run_json(run / SUMMARY, "run summary", "Give a folder `vesalius eval run` wrote; rerun it to finish")
    plots = run / "plots"
    sections = [f"# {summary['benchmark']}: {summary['mode']} run", "", summary_table(summary), ""]
    for name in _BREAKDOWNS:
        groups = summary.get("by", {}).get(name) or {}
        if len(groups) < 2:
            continue
        rows = [f"## By {name.replace('_', ' ')}", "", "| | n | accuracy % (95% CI) |", "|---|---:|---|"]
        rows += [
            f"| {g} | {b['n']} | {_pct(b['overall'], 'accuracy')} |"
            for g, b in sorted(groups.items(), key=lambda kv: -kv[1]["n"])
        ]
        picture = _bars(name, groups, plots / f"accuracy_by_{name}.png")
        sections += [*rows, "", f"![accuracy by {name}](plots/{picture.name})", ""]
    if (c := summary.get("classification")) and c.get("positive_class"):
        for picture in _classification_plots(run, c["positive_class"], plots):
            sections += [f"![{picture.stem}](plots/{picture.name})", ""]
    m = summary["manifest"]
    sections += [
        "## Run",
        "",
        f"- Vesalius {m.get('vesalius')}, code `{str(m.get('code_sha256'))[:12]}`, scoring `{m.get('scoring')}`",
        f"- data `{m.get('data')}` (SHA-256 `{str(m.get('data_file', {}).get('sha256'))[:12]}`)",
        f"- predictor: `{json.dumps(m.get('predictor'), sort_keys=True)}`",
        f"- reproduce: `vesalius eval run --from-manifest {run / 'manifest.json'} --out NEW`",
        "",
    ]
    path = run / "report.md"
    path.write_text("\n".join(sections))
    return path
