"""Train and validate the modality gate: which kind of image is this, so only matching models run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vesalius.vision.models.calibration import apply_temperature, fit_temperature
from vesalius.vision.models.card import Calibration, Card, save_bundle
from vesalius.vision.models.gate import CHEST_XRAY, MIN_PROBABILITY, OTHER, TAG_VETO_OTHER, decide, min_probability_for
from vesalius.vision.models.metrics import reliability
from vesalius.vision.models.net import NetConfig
from vesalius.vision.models.plots import plot_reliability
from vesalius.vision.train import datasets, gate_acceptance
from vesalius.vision.train.cards import LICENCES, describe
from vesalius.vision.train.trainer import Recipe, predict_logits, train_classifier


def gate_report(data: Path, out: Path, seed: int, epochs: int | None, version: str) -> Card:
    ds = datasets.gate(data, seed=seed)
    recipe = Recipe(NetConfig(width=16, classes=len(ds.classes), input_size=224), epochs=epochs or 15, seed=seed)
    start = time.monotonic()
    model = train_classifier(ds.train.images, ds.train.labels, recipe, "training modality_gate")
    minutes = (time.monotonic() - start) / 60
    logits = predict_logits(model, ds.val.images)
    y = ds.val.labels
    folds = datasets.fold_of(ds.val.groups, seed)
    probs = np.empty_like(logits)
    for k in np.unique(folds):
        fit, test = folds != k, folds == k
        probs[test] = apply_temperature(logits[test], fit_temperature(logits[fit], y[fit]))
    temperature = fit_temperature(logits, y)
    predicted = probs.argmax(1)
    chest = ds.classes.index(CHEST_XRAY)
    min_probability = {c: min_probability_for(c) for c in ds.classes if c != OTHER}
    # The runtime rule (vesalius.vision.models.gate.decide) on the cross-fitted probabilities: what the gate would do.
    decided = [
        decide(dict(zip(ds.classes, p.tolist(), strict=True)), coloured=bool(c), min_probability=min_probability)[0]
        for p, c in zip(probs, ds.val.colour, strict=True)
    ]
    accepted = np.array([k == CHEST_XRAY for k in decided])
    own = np.array([k == ds.classes[t] for k, t in zip(decided, y, strict=True)])
    confusion = np.zeros((len(ds.classes), len(ds.classes)), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    correct = (predicted == y).astype(int)
    before = reliability(correct, apply_temperature(logits, 1.0).max(1))
    after = reliability(correct, probs.max(1))
    plot = plot_reliability(
        before, after, out / "plots" / "modality_gate_reliability.png", "Modality gate: top-label calibration"
    )
    other = ds.classes.index(OTHER)
    known = [c for c in ds.classes if c != OTHER]
    metrics = {
        "n": len(y),
        "per_class_n": {c: int((y == i).sum()) for i, c in enumerate(ds.classes)},
        "accuracy": round(float(correct.mean()), 4),
        "per_class_recall": {c: round(float((predicted[y == i] == i).mean()), 4) for i, c in enumerate(ds.classes)},
        "per_class_accepted": {c: round(float(own[y == i].mean()), 4) for i, c in enumerate(ds.classes)},
        "confusion_rows_true_cols_predicted": confusion.tolist(),
        "non_chest_accepted_as_chest_xray": int(accepted[y != chest].sum()),
        "other_accepted_as_a_known_kind": int(np.isin(np.array(decided)[y == other], known).sum()),
        "chest_xray_accepted": round(float(accepted[y == chest].mean()), 4),
        "ece_top_label_before": round(before.ece, 4),
        "ece_top_label_after": round(after.ece, 4),
    }
    card = Card(
        name="modality_gate",
        version=version,
        kind="gate",
        task="kind of image: " + ", ".join(ds.classes),
        classes=list(ds.classes),
        net=recipe.net.to_dict(),
        calibration=Calibration(method="temperature", temperature=temperature),
        threshold=MIN_PROBABILITY,
        operating_point=f"a plain image counts as a kind only if `other` is not the most probable class and the kind's "
        f"probability is at least extra.min_probability ({MIN_PROBABILITY} for the kinds a trained model reads: "
        f"chest X-ray, ultrasound; {min_probability_for('ct')} for CT, MRI, pathology); a tag-decided ultrasound is "
        f"refused at P(other) >= {TAG_VETO_OTHER}",
        extra={"min_probability": min_probability, "tag_veto_other": TAG_VETO_OTHER},
        metrics=metrics,
        metrics_split=f"validation: {len(y)} images: Kermany films of the pneumonia model's validation patients, "
        "BreastMNIST's official validation part, a quarter of the VQA-RAD and PathVQA images of each class, and "
        "negatives held out by seed, by photograph or by whole family (vision/train/negatives.py); temperature "
        "cross-fitted in two folds. runtime_acceptance: the whole gate (pixel checks, rules, network) on each "
        "validation set, through ToolRegistry as a study would go",
        data=ds.source,
        licence=LICENCES["modality_gate"],
        recipe={
            "architecture": "CompactResNet width 16, from scratch",
            "epochs": recipe.epochs,
            "seed": seed,
            "train_images": len(ds.train.labels),
            "train_minutes_2_cores": round(minutes, 1),
        },
        plots=[plot.name],
        **describe("modality_gate"),
    )
    tensors = {f"net.{k}": v for k, v in model.state_dict().items()}
    save_bundle(out, card, tensors)  # written first: the runtime measurement below loads the gate from `out`
    # The whole runtime gate, as shipped, on every validation set: what users get, not what the network scores.
    runtime = gate_acceptance.report(data, out, seed)
    card.metrics["runtime_acceptance"] = {k: v["accepted"] for k, v in runtime["in_distribution"].items()}
    card.metrics["runtime_acceptance_n"] = {k: v["n"] for k, v in runtime["in_distribution"].items()}
    card.metrics["ood_per_family"] = {
        k: {key: v[key] for key in ("n", "seen_in_training", "no_model_runs", "not_a_known_kind", "alarms")}
        for k, v in runtime["out_of_distribution"].items()
    }
    card.metrics["ood_alarms"] = sum(v["alarms"] for v in runtime["out_of_distribution"].values())
    save_bundle(out, card, tensors)
    return card
