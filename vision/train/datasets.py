"""The training data, read from the shared data folder and split so that no patient is on both sides.

Every split is deterministic for a seed. Validation is split again into two folds: calibration and operating points
are fitted on one fold and measured on the other, so no reported number comes from the data that tuned it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vision.errors import ModelError
from vision.models.gate import looks_coloured
from vision.models.preprocess import to_grey_array

LABELS_DIR = Path(__file__).with_name("labels")


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 N x H x W
    labels: np.ndarray  # int64 N
    groups: np.ndarray  # patient (or image) id per item: folds never split a group
    names: tuple[str, ...]
    colour: np.ndarray | None = None  # whether each source image was in colour (the gate's runtime rule reads it)


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    classes: tuple[str, ...]
    source: str


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise ModelError(f"{what} not found at {path}", "Point --data at the shared data folder (../shared/data)")
    return path


_NORMAL_ID = re.compile(r"^(NORMAL2-)?IM-(\d+)-")
_PNEUMONIA_ID = re.compile(r"^person(\d+)_(bacteria|virus)_")


def kermany_patient(name: str) -> str:
    """The patient a Kermany file name belongs to: NORMAL 'IM-0115-0001.jpeg', PNEUMONIA 'person12_virus_3.jpeg'."""
    if m := _NORMAL_ID.match(name):
        return f"normal-{m.group(1) or ''}{m.group(2)}"
    if m := _PNEUMONIA_ID.match(name):
        return f"pneumonia-{m.group(1)}"
    raise ModelError(f"cannot read a patient id from the Kermany file name {name!r}", "Use the original file names")


def split_groups(groups: Sequence[str], labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of items in the held-out part: about `fraction` of the groups of each class, chosen at random."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(groups), dtype=bool)
    groups_arr = np.asarray(groups)
    for label in np.unique(labels):
        ids = sorted(set(groups_arr[labels == label]))
        chosen = set(rng.choice(ids, size=max(1, round(len(ids) * fraction)), replace=False))
        held |= np.isin(groups_arr, list(chosen)) & (labels == label)
    return held


def fold_of(groups: np.ndarray, seed: int, folds: int = 2) -> np.ndarray:
    """Assign each group (not each image) to one of `folds` validation folds."""
    rng = np.random.default_rng(seed + 1)
    unique = np.array(sorted(set(groups.tolist())))
    assignment = dict(zip(unique.tolist(), rng.permutation(len(unique)) % folds, strict=True))
    return np.array([assignment[g] for g in groups.tolist()])


def read_images(paths: Sequence[Path], size: int, desc: str) -> np.ndarray:
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", leave=False)):
        with Image.open(path) as im:
            out[i] = to_grey_array(im, size)
    return out


def _subset(images, labels, groups, names, mask, colour=None) -> Split:
    return Split(
        images[mask],
        labels[mask],
        np.asarray(groups)[mask],
        tuple(np.asarray(names)[mask]),
        None if colour is None else colour[mask],
    )


def kermany_files(data: Path, *, val_fraction: float = 0.2, seed: int = 0):
    """-> file paths, labels (NORMAL 0, PNEUMONIA 1), patient ids, and the held-out (validation) mask."""
    root = require(data / "kermany-cxr" / "train", "the Kermany chest X-ray folder")
    paths, labels = [], []
    for label, folder in enumerate(("NORMAL", "PNEUMONIA")):
        files = sorted(p for p in (root / folder).iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        paths += files
        labels += [label] * len(files)
    y = np.array(labels, dtype=np.int64)
    groups = [kermany_patient(p.name) for p in paths]
    return paths, y, groups, split_groups(groups, y, val_fraction, seed)


def kermany(data: Path, *, size: int = 224, val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Paediatric chest X-rays, NORMAL (0) vs PNEUMONIA (1), split by patient."""
    paths, y, groups, held = kermany_files(data, val_fraction=val_fraction, seed=seed)
    images = read_images(paths, size, "reading Kermany chest X-rays")
    names = [f"{p.parent.name}/{p.name}" for p in paths]
    return Dataset(
        train=_subset(images, y, groups, names, ~held),
        val=_subset(images, y, groups, names, held),
        classes=("normal", "pneumonia"),
        source="kermany-cxr/train (Kermany et al., Cell 2018; CC BY 4.0), split by patient",
    )


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    return np.stack([to_grey_array(Image.fromarray(im), size) for im in images])


def medmnist(data: Path, name: str, *, size: int = 28, positive: int = 1) -> Dataset:
    """A MedMNIST v2 task with its official train and val parts; `positive` is the label that means disease."""
    path = require(data / "medmnist" / f"{name}_trainval.npz", f"the MedMNIST file {name}_trainval.npz")
    with np.load(path) as npz:
        parts = {k: npz[k] for k in ("train_images", "train_labels", "val_images", "val_labels")}

    def part(which: str) -> Split:
        images = _resize_all(parts[f"{which}_images"].astype(np.uint8), size)
        y = (parts[f"{which}_labels"].reshape(-1) == positive).astype(np.int64)
        ids = [f"{which}-{i}" for i in range(len(y))]  # MedMNIST has no patient ids: each image is its own group
        return Split(images, y, np.array(ids), tuple(ids))

    classes = {"pneumoniamnist": ("normal", "pneumonia"), "breastmnist": ("normal or benign", "malignant")}[name]
    return Dataset(part("train"), part("val"), classes, f"MedMNIST v2 {name} (Yang et al., Sci Data 2023; CC BY 4.0)")


GATE_CLASSES = ("chest_xray_frontal", "ct", "mri", "ultrasound", "pathology")


def gate(data: Path, *, size: int = 224, seed: int = 0, per_source_limit: int = 700) -> Dataset:
    """Images of each kind the project may be shown, labelled by what they are (never by what disease they show).

    Chest X-rays: Kermany (capped; both folders, the gate never sees a disease label) and VQA-RAD frontal films;
    CT and MRI: VQA-RAD, hand-labelled (labels/vqa_rad_modality.csv); ultrasound: BreastMNIST; pathology: PathVQA.
    VQA-RAD has no radiographs of other body parts, so the gate has no such class: DICOM tags decide those.
    """
    rng = np.random.default_rng(seed)
    items: list[tuple[Path | np.ndarray, int, str, str]] = []  # (file or pixels, class, group, name)

    ker = require(data / "kermany-cxr" / "train", "the Kermany chest X-ray folder")
    files = sorted(p for folder in ("NORMAL", "PNEUMONIA") for p in (ker / folder).iterdir())
    for i in sorted(rng.choice(len(files), size=min(per_source_limit, len(files)), replace=False)):
        p = files[i]
        items.append((p, 0, kermany_patient(p.name), f"kermany/{p.name}"))

    vqa = require(data / "vqa-rad" / "images", "the VQA-RAD image folder")
    mapping = {name: i for i, name in enumerate(GATE_CLASSES)}
    with (LABELS_DIR / "vqa_rad_modality.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["modality"] in mapping:
                items.append((vqa / row["image_name"], mapping[row["modality"]], row["image_name"], row["image_name"]))

    path = require(data / "medmnist" / "breastmnist_trainval.npz", "the BreastMNIST file")
    with np.load(path) as npz:
        breast = np.concatenate([npz["train_images"], npz["val_images"]])
    for i in sorted(rng.choice(len(breast), size=min(per_source_limit, len(breast)), replace=False)):
        items.append((breast[i], 3, f"breast-{i}", f"breastmnist/{i}"))

    # PathVQA's greyscale figures are mostly radiographs and electron micrographs, not slides: left out.
    path_dir = require(data / "pathvqa" / "images", "the PathVQA image folder")
    for p in sorted(path_dir.iterdir())[:per_source_limit]:
        items.append((p, 4, p.name, f"pathvqa/{p.name}"))

    images = np.empty((len(items), size, size), dtype=np.uint8)
    colour = np.zeros(len(items), dtype=bool)
    for i, (src, *_rest) in enumerate(tqdm(items, desc="reading gate images", unit="img", leave=False)):
        if isinstance(src, np.ndarray):
            images[i] = to_grey_array(Image.fromarray(src), size)
        else:
            with Image.open(src) as im:
                images[i] = to_grey_array(im, size)
                colour[i] = looks_coloured(im)
    keep = ~np.array([name.startswith("pathvqa/") for *_, name in items]) | colour
    items = [item for item, k in zip(items, keep, strict=True) if k]
    images, colour = images[keep], colour[keep]
    y = np.array([c for _, c, _, _ in items], dtype=np.int64)
    groups = [g for _, _, g, _ in items]
    names = [n for *_, n in items]
    held = split_groups(groups, y, 0.25, seed)
    return Dataset(
        train=_subset(images, y, groups, names, ~held, colour),
        val=_subset(images, y, groups, names, held, colour),
        classes=GATE_CLASSES,
        source="Kermany CXR, VQA-RAD (hand-labelled modality), BreastMNIST, PathVQA",
    )
