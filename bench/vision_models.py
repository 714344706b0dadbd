"""How long the trained models take per image on CPU, against the bare classifier forward pass in the same run.

    .venv/bin/python bench/vision_models.py [--images 40] [--repeats 5] [--threads 2] [--out bench/VISION.md]

Per image (a 224 px chest X-ray from ../shared/data validation patients, or synthetic films without it), medians
over images x repeats, one image at a time (the agent's case):
- baseline: the pneumonia network's forward pass on a ready tensor;
- classifier: image in, calibrated probability out (resize, standardise, forward, calibration);
- anomaly + heatmap: patch features, FAISS search of the normal memory, smoothing, regions, overlay PNG written;
- classifier + anomaly + heatmap: the issue's target (<= 50 ms on 2 cores);
- gate: the modality gate on a plain image.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vesalius.vision.models.preprocess import to_tensor
from vesalius.vision.models.store import ModelStore
from vesalius.vision.tools.overlay import write_overlay

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def films(n: int) -> tuple[list[Image.Image], str]:
    if (SHARED / "kermany-cxr").is_dir():
        from vesalius.vision.train.datasets import kermany_files

        paths, _, _, held = kermany_files(SHARED)
        chosen = [paths[i] for i in np.flatnonzero(held)[:: max(1, held.sum() // n)][:n]]
        return [Image.open(p).convert("L") for p in chosen], f"{len(chosen)} Kermany validation films (224 px JPEG)"
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (224, 224), dtype=np.uint8)) for _ in range(n)], f"{n} synthetic"


def timed(fn, images, repeats) -> list[float]:
    fn(images[0])  # warm-up: first calls allocate
    out = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            fn(image)
            out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("VISION.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    store = ModelStore()
    classifier, detector, gate = store.classifier("pneumonia"), store.anomaly(), store.gate()
    images, source = films(args.images)
    tmp = Path(tempfile.mkdtemp())

    def forward(image):
        with torch.inference_mode():
            classifier.net(tensors[id(image)])

    tensors = {id(im): to_tensor([im], 224) for im in images}

    def classify(image):
        classifier.predict(image)

    def anomaly(image):
        [m] = detector.patch_maps([image])
        _, heat = detector.result(m)
        write_overlay(image, (heat - 0.5) / 1.5, tmp / "heat.png")

    def both(image):
        classify(image)
        anomaly(image)

    def gate_only(image):
        gate.classify(image)

    rows = []
    base = None
    for name, fn in (
        ("baseline: classifier forward pass", forward),
        ("classifier (image -> calibrated probability)", classify),
        ("anomaly + heatmap PNG", anomaly),
        ("classifier + anomaly + heatmap", both),
        ("modality gate", gate_only),
    ):
        ms = timed(fn, images, args.repeats)
        med = statistics.median(ms)
        base = base or med
        p90 = float(np.percentile(ms, 90))
        rows.append(f"| {name} | {med:.1f} | {p90:.1f} | {med / base:.2f}x |")
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "# Trained vision models: inference time per image",
            "",
            (
                f"Measured {date.today()} with `.venv/bin/python bench/vision_models.py --images {args.images} "
                f"--repeats {args.repeats} --threads {args.threads}` on {platform.machine()}, torch {torch.__version__}, "
                f"{args.threads} threads; {source}; one image per call. Target: classifier + anomaly heatmap <= 50 ms."
            ),
            "",
            "| step | median ms | p90 ms | vs baseline |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
