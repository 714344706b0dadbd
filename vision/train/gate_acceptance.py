"""What the whole gate decides at run time (pixel checks, tags, image gate), measured on every validation set.

In-distribution: the share of each validation set the gate accepts as its own kind, so the models that read it
run (Kermany films of the pneumonia model's validation patients, BreastMNIST's official validation thumbnails at
their own 28 px, the gate's held-out images of each class). Out of distribution: for each family of held-out
negative images (vesalius.vision.train.negatives), the share on which no trained model runs and the number of alarms (a
probability above its screening threshold, or an unusual anomaly score).

    python -m vesalius.vision.train.gate_acceptance --data ../shared/data [--models DIR] [--json out.json]

Every image goes through `ToolRegistry.kind` (and, for negatives, `ToolRegistry.run`) exactly as a study would.
"""

from __future__ import annotations

import argparse
import io
import json
from collections import defaultdict
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from vesalius.vision.image_io import read_image
from vesalius.vision.models.gate import CHEST_XRAY, Gate
from vesalius.vision.models.store import ModelStore
from vesalius.vision.options import IngestOptions
from vesalius.vision.study import Study
from vesalius.vision.tools.registry import ToolRegistry
from vesalius.vision.train import datasets

MODEL_TOOLS = ("pneumonia_classifier", "chest_anomaly", "breast_ultrasound_classifier")


def plain_study(image: Image.Image, name: str = "image") -> Study:
    """The study `vision.load_study` makes of `image` saved losslessly (TIFF keeps every mode, CMYK too): the
    reading path users get, not a stand-in."""
    saved = io.BytesIO()
    image.save(saved, "TIFF")
    saved.seek(0)
    return read_image(Path(name.replace("/", "_")), saved, IngestOptions())


def alarms(results) -> list[str]:
    out = []
    for r in results:
        if not r.applied:
            continue
        out += [f"{r.tool}: {p.label} {p.probability:.2f}" for p in r.probabilities if p.flagged]
        if r.anomaly is not None and r.anomaly.unusual:
            out.append(f"{r.tool}: unusual ({r.anomaly.score:.3f})")
    return out


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def acceptance(registry: ToolRegistry, images, expected: str, desc: str) -> dict:
    """Share of `images` ((name, PIL image) pairs) the gate decides to be `expected`; what it said instead."""
    n, hits, instead = 0, 0, defaultdict(int)
    for name, image in tqdm(images, desc=desc, unit="img", leave=False):
        kind = registry.kind(plain_study(image, name)).kind
        n += 1
        hits += kind == expected
        if kind != expected:
            instead[kind] += 1
    ranked = dict(sorted(instead.items(), key=lambda kv: -kv[1]))
    return {"n": n, "hits": hits, "accepted": _rate(hits, n), "instead": ranked}


def _images(items):
    for item in items:
        yield item.name, datasets.open_item(item)


def in_distribution(registry: ToolRegistry, data: Path, seed: int = 0) -> dict:
    out = {}
    paths, labels, _, held = datasets.kermany_files(data, seed=seed)
    for label, what in ((0, "normal"), (1, "pneumonia")):
        chosen = [p for p, y, h in zip(paths, labels, held, strict=True) if h and y == label]
        out[f"kermany_val_{what}"] = acceptance(
            registry, ((p.name, Image.open(p)) for p in chosen), CHEST_XRAY, f"Kermany val {what}"
        )
    both = [out["kermany_val_normal"], out["kermany_val_pneumonia"]]
    n, hits = sum(b["n"] for b in both), sum(b["hits"] for b in both)
    out["kermany_val"] = {"n": n, "hits": hits, "accepted": _rate(hits, n)}
    breast = datasets.medmnist(data, "breastmnist").val
    out["breastmnist_val"] = acceptance(
        registry,
        ((f"breastmnist/val/{i}", Image.fromarray(im)) for i, im in enumerate(breast.images)),
        "ultrasound",
        "BreastMNIST val",
    )
    items = [i for i in datasets.gate_items(data, seed=seed) if i.held]
    for label, cls in enumerate(datasets.GATE_CLASSES):
        chosen = [i for i in items if i.label == label]
        if chosen:
            out[f"gate_val_{cls}"] = acceptance(registry, _images(chosen), cls, f"gate val {cls}")
    return out


def out_of_distribution(registry: ToolRegistry, seed: int = 0, part: str = "val") -> dict:
    from vesalius.vision.train.negatives import FAMILIES, negatives

    per = defaultdict(lambda: {"n": 0, "no_model_runs": 0, "not_a_known_kind": 0, "alarms": 0, "kinds": {}})
    known = set(datasets.GATE_CLASSES) - {"other"}
    examples = defaultdict(list)
    wanted = [t for t in MODEL_TOOLS if t in registry.tools]
    for neg in tqdm(negatives(part, seed), desc=f"negatives ({part})", unit="img", leave=False):
        kind, results = registry.run(plain_study(neg.image, neg.name), wanted, None)
        row = per[neg.family]
        row["n"] += 1
        row["no_model_runs"] += not any(r.applied for r in results)
        row["not_a_known_kind"] += kind.kind not in known
        row["kinds"][kind.kind] = row["kinds"].get(kind.kind, 0) + 1
        if found := alarms(results):
            row["alarms"] += 1
            examples[neg.family].append(f"{neg.name}: {'; '.join(found)}")
    seen = {f.name: f.train > 0 for f in FAMILIES}
    out = {}
    for family, row in per.items():
        out[family] = {
            "n": row["n"],
            "seen_in_training": seen[family],
            "no_model_runs": _rate(row["no_model_runs"], row["n"]),
            "not_a_known_kind": _rate(row["not_a_known_kind"], row["n"]),
            "alarms": row["alarms"],
            "kinds": row["kinds"],
            "alarm_examples": examples[family][:3],
        }
    return out


class GateStore(ModelStore):
    """The gate from `gate_dir` (a fresh `vesalius train modality_gate --out DIR`), every other model from the
    shipped weights (or from `gate_dir` where it holds them too)."""

    def __init__(self, gate_dir: Path):
        super().__init__()
        self.gate_dir = gate_dir
        if (gate_dir / "breastmnist.json").exists():
            self.directory = gate_dir

    def gate(self, name: str = "modality_gate") -> Gate:
        if name not in self._loaded:
            self._loaded[name] = Gate(*ModelStore(self.gate_dir).network(name))
        return self._loaded[name]  # type: ignore[return-value]


def report(data: Path, models: Path | None = None, seed: int = 0) -> dict:
    registry = ToolRegistry.default(GateStore(models) if models else ModelStore(), plugins=False)
    return {
        "in_distribution": in_distribution(registry, data, seed),
        "out_of_distribution": out_of_distribution(registry, seed),
    }


def table(result: dict) -> str:
    lines = ["| validation set | n | accepted as its kind |", "|---|---|---|"]
    for name, row in result["in_distribution"].items():
        lines.append(f"| {name} | {row['n']} | {row['accepted']} |")
    lines += [
        "",
        "| negative family (val) | seen in training | n | no model runs | not a known kind | alarms |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["out_of_distribution"].items():
        lines.append(
            f"| {name} | {'yes' if row['seen_in_training'] else 'no'} | {row['n']} | {row['no_model_runs']} | "
            f"{row['not_a_known_kind']} | {row['alarms']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", type=Path, default=None, help="a weights folder (default: the shipped one)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = report(args.data, args.models, args.seed)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
