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

from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.gate import looks_coloured
from vesalius.vision.models.preprocess import to_grey_array

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
        raise ModelWeightsError(
            f"{what} not found at {path}", "Point --data at the shared data folder (../shared/data)"
        )
    return path


_NORMAL_ID = re.compile(r"^(NORMAL2-)?IM-(\d+)-")
_PNEUMONIA_ID = re.compile(r"^person(\d+)_(bacteria|virus)_")


def kermany_patient(name: str) -> str:
    """The patient a Kermany file name belongs to: NORMAL 'IM-0115-0001.jpeg', PNEUMONIA 'person12_virus_3.jpeg'."""
    if m := _NORMAL_ID.match(name):
        return f"normal-{m.group(1) or ''}{m.group(2)}"
    if m := _PNEUMONIA_ID.match(name):
        return f"pneumonia-{m.group(1)}"
    raise ModelWeightsError(
        f"cannot read a patient id from the Kermany file name {name!r}", "Use the original file names"
    )


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


GATE_CLASSES = ("chest_xray_frontal", "ct", "mri", "ultrasound", "pathology", "other")
OTHER = GATE_CLASSES.index("other")


@dataclass(frozen=True)
class GateItem:
    source: Path | np.ndarray  # a file, or pixels (BreastMNIST)
    label: int  # index in GATE_CLASSES
    group: str  # patient or image: never on both sides
    name: str
    held: bool  # in validation
    colour: bool = False


def gate_items(data: Path, *, seed: int = 0, per_source_limit: int = 700) -> list[GateItem]:
    """The gate's medical images (every class but `other`) and the side of the split each is on.

    Kermany films are split as the pneumonia model splits them (by patient) and BreastMNIST by its official
    train/val, so a film or thumbnail another model validates on is never in the gate's training either, and the
    gate's acceptance on those validation sets is measured on images it never saw. VQA-RAD and PathVQA (images
    only the gate uses) hold out a quarter of the images of each class.
    """
    rng = np.random.default_rng(seed)
    items: list[GateItem] = []

    paths, _, patients, held = kermany_files(data, seed=seed)
    for i in sorted(rng.choice(len(paths), size=min(per_source_limit, len(paths)), replace=False)):
        items.append(GateItem(paths[i], 0, patients[i], f"kermany/{paths[i].name}", bool(held[i])))

    path = require(data / "medmnist" / "breastmnist_trainval.npz", "the BreastMNIST file")
    with np.load(path) as npz:
        for part in ("train", "val"):
            for i, pixels in enumerate(npz[f"{part}_images"][:per_source_limit]):
                items.append(GateItem(pixels, 3, f"breast-{part}-{i}", f"breastmnist/{part}/{i}", part == "val"))

    rest: list[GateItem] = []
    vqa = require(data / "vqa-rad" / "images", "the VQA-RAD image folder")
    mapping = {name: i for i, name in enumerate(GATE_CLASSES)}
    with (LABELS_DIR / "vqa_rad_modality.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["modality"] in mapping:
                name = row["image_name"]
                rest.append(GateItem(vqa / name, mapping[row["modality"]], name, name, False))

    # PathVQA's greyscale figures are mostly radiographs and electron micrographs, not slides: left out.
    path_dir = require(data / "pathvqa" / "images", "the PathVQA image folder")
    for p in sorted(path_dir.iterdir())[:per_source_limit]:
        with Image.open(p) as im:
            if looks_coloured(im):
                rest.append(GateItem(p, 4, p.name, f"pathvqa/{p.name}", False, colour=True))
    held_rest = split_groups([i.group for i in rest], np.array([i.label for i in rest]), 0.25, seed)
    items += [
        GateItem(i.source, i.label, i.group, i.name, bool(h), i.colour) for i, h in zip(rest, held_rest, strict=True)
    ]
    return items


def open_item(item: GateItem) -> Image.Image:
    if isinstance(item.source, np.ndarray):
        return Image.fromarray(item.source)
    with Image.open(item.source) as im:
        im.load()
        return im


def gate(data: Path, *, size: int = 224, seed: int = 0, per_source_limit: int = 700) -> Dataset:
    """Images of each kind the project may be shown, labelled by what they are (never by what disease they show),
    and images of none of those kinds (`other`: vesalius.vision.train.negatives).

    Chest X-rays: Kermany (capped; both folders, the gate never sees a disease label) and VQA-RAD frontal films;
    CT and MRI: VQA-RAD, hand-labelled (labels/vqa_rad_modality.csv); ultrasound: BreastMNIST; pathology: PathVQA.
    VQA-RAD has no radiographs of other body parts, so no such image is in any class: DICOM tags decide those.
    """
    from vesalius.vision.train.negatives import negatives  # scikit-image: only training needs it

    items = gate_items(data, seed=seed, per_source_limit=per_source_limit)
    train_negatives, val_negatives = list(negatives("train", seed)), list(negatives("val", seed))
    n = len(items) + len(train_negatives) + len(val_negatives)
    images = np.empty((n, size, size), dtype=np.uint8)
    colour = np.zeros(n, dtype=bool)
    labels, groups, names, held = [], [], [], np.zeros(n, dtype=bool)
    for i, item in enumerate(tqdm(items, desc="reading gate images", unit="img", leave=False)):
        im = open_item(item)
        images[i], colour[i] = to_grey_array(im, size), looks_coloured(im)
        labels.append(item.label), groups.append(item.group), names.append(item.name)
        held[i] = item.held
    for j, neg in enumerate([*train_negatives, *val_negatives], start=len(items)):
        images[j], colour[j] = to_grey_array(neg.image, size), looks_coloured(neg.image)
        labels.append(OTHER), groups.append(neg.name.split("#")[0]), names.append(neg.name)
        held[j] = j >= len(items) + len(train_negatives)
    y = np.array(labels, dtype=np.int64)
    return Dataset(
        train=_subset(images, y, groups, names, ~held, colour),
        val=_subset(images, y, groups, names, held, colour),
        classes=GATE_CLASSES,
        source="Kermany CXR, VQA-RAD (hand-labelled modality), BreastMNIST, PathVQA; `other`: generated images and "
        "scikit-image's bundled photographs (vision/train/negatives.py)",
    )
