"""Two runs on the same questions, compared item by item: paired differences with bootstrap intervals, and
McNemar's exact test on the closed questions. Only the questions both runs finished are compared, and the two
runs must have used the same benchmark data and scoring scheme: otherwise the difference would measure those."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vesalius.eval.errors import BenchmarkError
from vesalius.eval.runner import MANIFEST, Record, finished, run_json


def _manifest(run: Path) -> dict[str, Any]:
    return run_json(run / MANIFEST, "run manifest", "Give folders made by `vesalius eval run`")


def compare(run_a: Path, run_b: Path) -> dict[str, Any]:
    from vesalius.eval.scoring.stats import mcnemar_exact, paired_bootstrap

    ma, mb = _manifest(run_a), _manifest(run_b)
    for key in ("benchmark", "scoring"):
        if ma.get(key) != mb.get(key):
            raise BenchmarkError(
                f"the runs differ in {key} ({ma.get(key)} and {mb.get(key)})",
                "Compare runs of one benchmark and scheme",
            )
    if ma.get("data_file", {}).get("sha256") != mb.get("data_file", {}).get("sha256"):
        raise BenchmarkError("the runs read different data files", "Compare runs of the same benchmark file")
    a, b = finished(run_a), finished(run_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise BenchmarkError("the runs have no finished question in common", "Let both runs finish, then compare")

    def block(ids: list[str], metric: str) -> dict[str, Any]:
        xa, xb = [_value(a[i], metric) for i in ids], [_value(b[i], metric) for i in ids]
        d = paired_bootstrap(xa, xb)
        return {"n": len(ids), "a": sum(xa) / len(ids), "b": sum(xb) / len(ids), **dataclasses.asdict(d)}

    closed = [i for i in shared if a[i].kind != "open"]
    open_ = [i for i in shared if a[i].kind == "open"]
    result: dict[str, Any] = {
        "a": str(run_a),
        "b": str(run_b),
        "benchmark": ma.get("benchmark"),
        "scoring": ma.get("scoring"),
        "n": len(shared),
        "overall": block(shared, "correct"),
    }
    if closed:
        test = mcnemar_exact([a[i].scores["correct"] for i in closed], [b[i].scores["correct"] for i in closed])
        result["closed"] = {**block(closed, "correct"), "mcnemar": dataclasses.asdict(test)}
    if open_:
        result["open"] = {m: block(open_, m) for m in ("exact_match", "token_f1")}
    return result


def _value(record: Record, metric: str) -> float:
    if metric == "correct":
        return float(bool(record.scores["correct"]))
    return float(record.scores.get("metrics", {}).get(metric, 0.0))


def comparison_table(c: dict[str, Any]) -> str:
    def row(name: str, blk: dict[str, Any], extra: str = "") -> str:
        diff = f"{100 * blk['difference']:+.1f} ({100 * blk['low']:+.1f} to {100 * blk['high']:+.1f})"
        return f"| {name} | {blk['n']} | {100 * blk['a']:.1f} | {100 * blk['b']:.1f} | {diff} | {blk['p_value']:.3g}{extra} |"

    rows = [
        f"{c['benchmark']} · scoring {c['scoring']} · {c['n']} questions in both runs",
        f"A = {c['a']}",
        f"B = {c['b']}",
        "",
        "| | n | A % | B % | A - B, points (95% CI) | p |",
        "|---|---:|---:|---:|---|---|",
        row("overall", c["overall"]),
    ]
    if "closed" in c:
        m = c["closed"]["mcnemar"]
        rows.append(
            row("closed", c["closed"], f"; McNemar p {m['p_value']:.3g} ({m['only_a']} only A, {m['only_b']} only B)")
        )
    for metric, blk in c.get("open", {}).items():
        rows.append(row(f"open {metric.replace('_', ' ')}", blk))
    return "\n".join(rows)
