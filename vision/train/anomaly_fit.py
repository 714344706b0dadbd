"""Fit the chest X-ray anomaly detector: a memory of normal patches, thresholds from validation normals only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.anomaly import (
    NormalMemory,
    PatchFeatures,
    greedy_coreset,
    image_scores,
    patch_features,
    smooth,
)
from vesalius.vision.models.card import Card, save_bundle
from vesalius.vision.models.metrics import auroc, auroc_ci, confusion_at, roc_curve
from vesalius.vision.models.net import CompactResNet
from vesalius.vision.models.plots import plot_roc, plot_score_histogram
from vesalius.vision.models.store import ModelStore
from vesalius.vision.train import datasets
from vesalius.vision.train.cards import LICENCES, describe

MEMORY_SIZE = 8192
SAMPLE_PATCHES = 200_000  # the coreset is chosen among this many random normal patches
NORMAL_SPECIFICITY = 0.95  # the threshold passes this share of validation normal images
PATCH_QUANTILE = 0.995  # a patch beyond this quantile of validation-normal patches is part of a region


def _backbone(out: Path, name: str) -> CompactResNet:
    return ModelStore(out).network(name)[1]


def _features(net: CompactResNet, images: np.ndarray, spec: PatchFeatures, desc: str):
    """Patch features of `images`, a batch at a time (with a progress bar)."""
    for start in tqdm(range(0, len(images), 64), desc=desc, unit="batch", leave=False):
        yield patch_features(net, torch.from_numpy(images[start : start + 64])[:, None], spec)


def fit_memory(net: CompactResNet, normals: np.ndarray, spec: PatchFeatures, seed: int) -> np.ndarray:
    feats = torch.cat(list(_features(net, normals, spec, "normal patch features"))).reshape(-1, spec.dim)
    g = torch.Generator().manual_seed(seed)
    sample = feats[torch.randperm(len(feats), generator=g)[:SAMPLE_PATCHES]]
    chosen = greedy_coreset(sample, MEMORY_SIZE, seed)
    return sample[chosen].numpy()


def evaluate_backbone(net, ds: datasets.Dataset, spec: PatchFeatures, seed: int):
    memory = fit_memory(net, ds.train.images[ds.train.labels == 0], spec, seed)
    search = NormalMemory(memory)
    maps = np.concatenate([search.patch_scores(f) for f in _features(net, ds.val.images, spec, "validation patches")])
    return memory, maps, image_scores(maps)


def _label_free_auroc(out: Path, ds: datasets.Dataset, spec: PatchFeatures, seed: int) -> dict:
    """The same detector over the modality gate's network, which never saw a disease label: what the features
    learnt from pneumonia labels add. Reported beside the shipped numbers, not shipped."""
    try:
        gate_net = _backbone(out, "modality_gate")
    except ModelWeightsError:
        return {}
    _, _, scores = evaluate_backbone(gate_net, ds, spec, seed)
    return {"auroc_with_label_free_backbone": round(auroc(ds.val.labels, scores), 4)}


def fit_anomaly(data: Path, out: Path, seed: int, version: str, backbone: str = "pneumonia") -> Card:
    ds = datasets.kermany(data, seed=seed)  # the same patients as the backbone's training: validation stays unseen
    spec = PatchFeatures(seed=seed)
    try:
        net = _backbone(out, backbone)
    except ModelWeightsError as exc:
        raise ModelWeightsError(
            f"the anomaly detector reads the '{backbone}' network, which is missing",
            f"Run `vesalius train {backbone}` first",
        ) from exc
    memory, maps, scores = evaluate_backbone(net, ds, spec, seed)
    y = ds.val.labels
    normal = y == 0
    folds = datasets.fold_of(ds.val.groups, seed)
    predicted = np.empty(len(y), dtype=bool)
    for k in np.unique(folds):
        fit, test = (folds != k) & normal, folds == k
        predicted[test] = scores[test] >= np.quantile(scores[fit], NORMAL_SPECIFICITY)
    pooled = confusion_at(y, predicted.astype(float), 0.5)
    threshold = float(np.quantile(scores[normal], NORMAL_SPECIFICITY))
    smoothed = np.stack([smooth(m) for m in maps])
    patch_limit = float(np.quantile(smoothed[normal], PATCH_QUANTILE))
    with_region = smoothed.reshape(len(y), -1).max(1) > patch_limit
    score = auroc(y, scores)
    ci = auroc_ci(y, scores)
    fpr, tpr, _ = roc_curve(y, scores)
    plots = [
        plot_roc(
            {"anomaly score": (fpr, tpr, score)},
            out / "plots" / "chest_anomaly_roc.png",
            "Chest anomaly (normals-only memory): normal vs pneumonia",
            operating_points={"anomaly score": (pooled.sensitivity, pooled.specificity)},
        ).name,
        plot_score_histogram(
            scores[normal],
            scores[~normal],
            threshold,
            out / "plots" / "chest_anomaly_scores.png",
            "Anomaly scores on validation",
            "image score",
        ).name,
    ]
    label_free = _label_free_auroc(out, ds, spec, seed)
    metrics = {
        "n": len(y),
        "normal": int(normal.sum()),
        "pneumonia": int((~normal).sum()),
        "auroc_normal_vs_pneumonia": round(score, 4),
        "auroc_ci95": [round(ci[0], 4), round(ci[1], 4)],
        "operating_point": f"{NORMAL_SPECIFICITY:.0%} of validation normals below the threshold (other fold)",
        "sensitivity": round(pooled.sensitivity, 4),
        "specificity": round(pooled.specificity, 4),
        "normal_images_with_a_region": round(float(with_region[normal].mean()), 4),
        "pneumonia_images_with_a_region": round(float(with_region[~normal].mean()), 4),
        **label_free,
    }
    card = Card(
        name="chest_anomaly",
        version=version,
        kind="anomaly",
        task="how unusual a frontal chest X-ray is compared with normal ones, with where",
        classes=["normal", "unusual"],
        net={"input_size": 224},
        backbone=backbone,
        threshold=round(threshold, 4),
        operating_point=f"the {NORMAL_SPECIFICITY:.0%} quantile of the validation normal films' scores",
        extra={
            "features": {"stages": list(spec.stages), "dim": spec.dim, "seed": spec.seed},
            "patch_limit": round(patch_limit, 4),
            "normal_score_quantiles": np.round(np.quantile(scores[normal], np.linspace(0, 1, 101)), 4).tolist(),
            "memory_size": len(memory),
        },
        metrics=metrics,
        metrics_split="validation by patient (the backbone's held-out patients): normals set the thresholds in one "
        "fold, measured on the other; AUROC over all validation images",
        data=ds.source + "; memory from NORMAL training images only",
        licence=LICENCES["chest_anomaly"],
        recipe={
            "method": "PatchCore-style nearest-neighbour distance to a greedy coreset of normal patch features",
            "backbone": backbone,
            "feature_stages": list(spec.stages),
            "projection_dim": spec.dim,
            "memory_size": MEMORY_SIZE,
            "image_score": "mean of the top 5% patch distances",
            "seed": seed,
        },
        plots=plots,
        **describe("chest_anomaly"),
    )
    save_bundle(out, card, {"memory": torch.from_numpy(memory)})
    return card
