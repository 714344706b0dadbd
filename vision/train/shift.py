"""How a chest film classifier holds up when the film comes from somewhere else: the validation films again, each
changed the way another device, site or export changes a film (exposure, contrast, noise, blur, framing, rotation,
compression, resolution), and the same numbers measured on each copy next to the in-distribution ones.

A validation split drawn from the training distribution is optimistic (an independent measurement found the shipped
pneumonia model at AUROC 0.961 on the official Kermany test split against 0.998 on validation). These copies are no
substitute for another hospital's films, but a number that falls on them will fall there too.

Where the model has a population check (vision/models/population.py), each row also says how many films it calls
unlike its training films. VQA-RAD's adult chest films, a population the pneumonia model never saw, are counted
apart (`adult_chest_report`): how many would have raised an alarm without the check, and how many still do.

    python -m vesalius.vision.train.shift --data ../shared/data [--model pneumonia]
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from vesalius.vision.models.metrics import auroc, confusion_at, expected_calibration_error

Shift = Callable[[Image.Image, np.random.Generator], Image.Image]
# uint8 N x H x W -> calibrated P(positive), and which films are outside the training range (None: no check)
Read = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
LABELS = Path(__file__).resolve().parent / "labels" / "vqa_rad_modality.csv"


def _gamma(g: float) -> Shift:
    return lambda im, _: im.point(lambda v: round(255 * (v / 255) ** g))


def _contrast(c: float) -> Shift:
    def shift(im: Image.Image, _) -> Image.Image:
        a = np.asarray(im, dtype=np.float32)
        return Image.fromarray(np.clip((a - a.mean()) * c + a.mean(), 0, 255).astype(np.uint8))

    return shift


def _noise(sd: float) -> Shift:
    def shift(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        a = np.asarray(im, dtype=np.float32) + rng.normal(0, sd, (im.height, im.width))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))

    return shift


def _crop(keep: float) -> Shift:
    def shift(im: Image.Image, _) -> Image.Image:
        w, h = im.size
        dw, dh = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
        return im.crop((dw, dh, w - dw, h - dh)).resize((w, h), Image.Resampling.BILINEAR)

    return shift


def _jpeg(quality: int) -> Shift:
    def shift(im: Image.Image, _) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buf.getvalue())).convert("L")

    return shift


def _half_resolution(im: Image.Image, _) -> Image.Image:
    w, h = im.size
    return im.resize((w // 2, h // 2), Image.Resampling.BILINEAR).resize((w, h), Image.Resampling.BILINEAR)


SHIFTS: dict[str, Shift] = {
    "darker (gamma 1.5)": _gamma(1.5),
    "brighter (gamma 0.67)": _gamma(0.67),
    "low contrast (x0.6)": _contrast(0.6),
    "high contrast (x1.4)": _contrast(1.4),
    "noise (sd 12 grey levels)": _noise(12.0),
    "blur (gaussian 1.5 px)": lambda im, _: im.filter(ImageFilter.GaussianBlur(1.5)),
    "zoomed in (central 85%)": _crop(0.85),
    "rotated 10 degrees": lambda im, _: im.rotate(10, resample=Image.Resampling.BILINEAR, fillcolor=0),
    "JPEG quality 20": _jpeg(20),
    "half resolution": _half_resolution,
}


def shifted(images: np.ndarray, shift: Shift, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.asarray(shift(Image.fromarray(a), rng), dtype=np.uint8) for a in images])


def row(labels: np.ndarray, probs: np.ndarray, predicted: np.ndarray, outside: np.ndarray | None = None) -> dict:
    """One line of the table: ranking and calibration of `probs`, sensitivity and specificity of `predicted`."""
    point = confusion_at(labels, np.asarray(predicted, dtype=float), 0.5)
    out = {
        "auroc": round(float(auroc(labels, probs)), 4),
        "ece": round(float(expected_calibration_error(labels, probs)), 4),
        "sensitivity": round(float(point.sensitivity), 4),
        "specificity": round(float(point.specificity), 4),
    }
    if outside is not None:
        out["outside_training_range"] = round(float(np.mean(outside)), 4)
    return out


def with_worst(report: dict[str, dict]) -> dict[str, dict]:
    """The report with `worst_over_shifts`: the worst of each number over the shifted copies."""
    copies = [v for k, v in report.items() if k != "in_distribution"]
    worst = {
        "auroc": min(c["auroc"] for c in copies),
        "ece": max(c["ece"] for c in copies),
        "sensitivity": min(c["sensitivity"] for c in copies),
        "specificity": min(c["specificity"] for c in copies),
    }
    if all("outside_training_range" in c for c in copies):
        worst["outside_training_range"] = max(c["outside_training_range"] for c in copies)
    return {**report, "worst_over_shifts": worst}


def shift_report(read: Read, images: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """A model at a fixed calibration and threshold: in distribution first, then every shifted copy, then the
    worst of each number over the copies. (`vesalius train pneumonia` cross-fits its own table instead: its
    calibration is fitted on these copies.)"""
    report = {}
    for name, shift in {"in_distribution": None, **SHIFTS}.items():
        probs, outside = read(images if shift is None else shifted(images, shift))
        report[name] = row(labels, probs, probs >= threshold, outside)
    return with_worst(report)


def adult_chest_films(data: Path, size: int = 224) -> np.ndarray:
    """VQA-RAD's frontal chest films (adults, from teaching cases; labelled by hand in labels/), uint8 N x H x W."""
    from vesalius.vision.train.datasets import read_images, require

    folder = require(data / "vqa-rad" / "images", "the VQA-RAD image folder")
    with LABELS.open(newline="") as f:
        names = [row["image_name"] for row in csv.DictReader(f) if row["modality"] == "chest_xray_frontal"]
    return read_images([folder / n for n in names], size, "reading VQA-RAD chest films")


def adult_chest_report(probs: np.ndarray, outside: np.ndarray, threshold: float) -> dict:
    """How many adult films the model would have called above its screening threshold, how many the population
    check calls unlike its training films, and how many alarms are left once it has. No pneumonia labels exist for
    them, so this counts alarms, not errors; `outside` must come from checks that did not see the film."""
    above = np.asarray(probs) >= threshold
    return {
        "n": len(above),
        "above_threshold_without_check": round(float(above.mean()), 4),
        "outside_training_range": round(float(np.mean(outside)), 4),
        "alarms_with_check": round(float((above & ~outside).mean()), 4),
    }


def table(report: dict) -> str:
    checked = all("outside_training_range" in m for m in report.values())
    lines = [
        "| validation films | AUROC | ECE | sensitivity | specificity |" + (" unlike training |" if checked else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if checked else ""),
    ]
    for name, m in report.items():
        line = f"| {name} | {m['auroc']:.3f} | {m['ece']:.3f} | {m['sensitivity']:.2f} | {m['specificity']:.2f} |"
        lines.append(line + (f" {m['outside_training_range']:.1%} |" if checked else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", default="pneumonia")
    args = parser.parse_args()
    from vesalius.vision.models.store import ModelStore
    from vesalius.vision.train import datasets

    model = ModelStore().classifier(args.model)
    card = model.card
    ds = datasets.kermany(args.data, seed=int(card.recipe.get("seed", 0)))
    read = reader(model.net, card.calibration, model.population)
    print(table(shift_report(read, ds.val.images, ds.val.labels, card.threshold)))
    return 0


def reader(net, calibration, population) -> Read:
    """A trained network, its calibration and (optionally) its population check as one `Read`."""
    from vesalius.vision.models.classifier import calibrate
    from vesalius.vision.train.trainer import predict_with_features

    def read(images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        logits, features = predict_with_features(net, images)
        outside = None if population is None else population.outside(features)
        return calibrate(logits, calibration), outside

    return read


if __name__ == "__main__":
    raise SystemExit(main())
