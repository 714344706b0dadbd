"""How a chest film classifier holds up when the film comes from somewhere else: the validation films again, each
changed the way another device, site or export changes a film (exposure, contrast, noise, blur, framing, rotation,
compression, resolution), and the same numbers measured on each copy next to the in-distribution ones.

A validation split drawn from the training distribution is optimistic (an independent measurement found the shipped
pneumonia model at AUROC 0.961 on the official Kermany test split against 0.998 on validation). These copies are no
substitute for another hospital's films, but a number that falls on them will fall there too.

    python -m vesalius.vision.train.shift --data ../shared/data [--model pneumonia] [--write-card]
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from vesalius.vision.models.metrics import auroc, confusion_at, expected_calibration_error

Shift = Callable[[Image.Image, np.random.Generator], Image.Image]


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


def measure(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    point = confusion_at(labels, probs, threshold)
    return {
        "auroc": round(float(auroc(labels, probs)), 4),
        "ece": round(float(expected_calibration_error(labels, probs)), 4),
        "sensitivity": round(float(point.sensitivity), 4),
        "specificity": round(float(point.specificity), 4),
    }


def shift_report(predict: Callable[[np.ndarray], np.ndarray], images, labels, threshold: float) -> dict:
    """`predict`: uint8 N x H x W -> calibrated P(positive). In distribution first, then every shifted copy, and the
    worst of each number over the copies."""
    report = {"in_distribution": measure(predict(images), labels, threshold)}
    for name, shift in SHIFTS.items():
        report[name] = measure(predict(shifted(images, shift)), labels, threshold)
    copies = [v for k, v in report.items() if k != "in_distribution"]
    report["worst_over_shifts"] = {
        "auroc": min(c["auroc"] for c in copies),
        "ece": max(c["ece"] for c in copies),
        "sensitivity": min(c["sensitivity"] for c in copies),
        "specificity": min(c["specificity"] for c in copies),
    }
    return report


def table(report: dict) -> str:
    lines = ["| validation films | AUROC | ECE | sensitivity | specificity |", "|---|---:|---:|---:|---:|"]
    for name, m in report.items():
        lines.append(
            f"| {name} | {m['auroc']:.3f} | {m['ece']:.3f} | {m['sensitivity']:.2f} | {m['specificity']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", default="pneumonia")
    parser.add_argument("--write-card", action="store_true", help="add the table to the shipped card as metrics.shift")
    args = parser.parse_args()
    from vesalius.vision.models.card import WEIGHTS_DIR, load_bundle, save_bundle
    from vesalius.vision.models.classifier import calibrate
    from vesalius.vision.models.store import ModelStore
    from vesalius.vision.train import datasets
    from vesalius.vision.train.cards import write_markdown
    from vesalius.vision.train.trainer import predict_logits

    card, net = ModelStore().network(args.model)
    ds = datasets.kermany(args.data, seed=int(card.recipe.get("seed", 0)))
    report = shift_report(
        lambda x: calibrate(predict_logits(net, x), card.calibration), ds.val.images, ds.val.labels, card.threshold
    )
    print(table(report))
    if args.write_card:
        _, tensors = load_bundle(WEIGHTS_DIR, args.model)
        card.metrics["shift"] = report
        save_bundle(WEIGHTS_DIR, card, tensors)
        write_markdown(card, WEIGHTS_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
