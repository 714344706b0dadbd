"""MedMNIST v2 `.npz` files: arrays `<split>_images` (N, H, W) or (N, H, W, C) uint8 and `<split>_labels` (N, 1)
or (N,) for the splits train, val and test, whichever are present. One item per image, kind "label".

Items hold no pixels: `array` names the file, array and index, and `read_image` / `image_png` read that one image
(seeking inside the npz member), so loading keeps memory bounded whatever the image size. Class names come from
MedMNIST's published label tables for the datasets listed in CLASSES, else they are the label numbers."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from vesalius.eval.errors import BenchmarkError, ItemProblem
from vesalius.eval.items import ArrayRef, EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, check_file, no_images

NAME = "medmnist"
SPLITS = ("train", "val", "test")

# MedMNIST v2 INFO["label"], by the file name's dataset prefix.
CLASSES: dict[str, tuple[str, ...]] = {
    "pneumoniamnist": ("normal", "pneumonia"),
    "breastmnist": ("malignant", "normal, benign"),
}


def _header(zf: zipfile.ZipFile, key: str, path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran order, data offset) of the array `key`, from its .npy header alone."""
    try:
        with zf.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            return shape, dtype, fortran, f.tell()
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise BenchmarkError(f"The array {key} in {path} cannot be read ({e})", "Give an intact MedMNIST npz") from None


def _open(path: Path) -> zipfile.ZipFile:
    check_file(path, "MedMNIST file")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BenchmarkError(f"The MedMNIST file {path} is not an npz archive ({e})", "Give a MedMNIST .npz") from None


def _labels(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:  # pickled object arrays could run code: refused
            labels = npz[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise BenchmarkError(f"The array {key} in {path} cannot be read ({e})", "Give an intact MedMNIST npz") from None
    if labels.ndim == 2 and labels.shape[1] != 1:
        raise BenchmarkError(
            f"The labels {key} in {path} have {labels.shape[1]} columns: multi-label data (ChestMNIST) is not supported",
            "Use a single-label MedMNIST dataset",
        )
    if labels.ndim not in (1, 2) or not np.issubdtype(labels.dtype, np.integer):
        raise BenchmarkError(
            f"The labels {key} in {path} are {labels.dtype} of shape {labels.shape}, not one integer per image",
            "Give a MedMNIST npz",
        )
    return labels.reshape(-1)


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    no_images(images, NAME)  # the images are inside the npz
    with _open(path) as zf:
        names = {n.removesuffix(".npy") for n in zf.namelist()}
        splits = [s for s in SPLITS if f"{s}_images" in names or f"{s}_labels" in names]
        if not splits:
            raise BenchmarkError(
                f"The file {path} has none of the arrays train_images, val_images, test_images",
                "Give a MedMNIST .npz",
            )
        shapes = {}
        for split in splits:
            for key in (f"{split}_images", f"{split}_labels"):
                if key not in names:
                    raise BenchmarkError(f"The file {path} has no array {key}", "Give a complete MedMNIST .npz")
            shape, dtype, _, _ = _header(zf, f"{split}_images", path)
            if len(shape) not in (3, 4) or dtype != np.uint8:
                raise BenchmarkError(
                    f"The images {split}_images in {path} are {dtype} of shape {shape}, not uint8 (N, H, W[, C])",
                    "Give a MedMNIST .npz",
                )
            shapes[split] = shape
    prefix = path.name.split("_")[0].lower()
    labels = {split: _labels(path, f"{split}_labels") for split in splits}
    top = max((int(v.max()) for v in labels.values() if v.size), default=0)
    classes = CLASSES.get(prefix, tuple(str(i) for i in range(top + 1)))
    out = Collector(NAME, path, skip_bad)
    for split in splits:
        if len(labels[split]) != shapes[split][0]:
            raise BenchmarkError(
                f"The file {path} has {shapes[split][0]} {split} images but {len(labels[split])} labels",
                "Give an intact MedMNIST .npz",
            )
        for index, value in enumerate(labels[split].tolist()):

            def build(split: str = split, index: int = index, value: int = value) -> EvalItem:
                if not 0 <= value < len(classes):
                    raise ItemProblem(f"its label {value} is not a class index below {len(classes)}")
                item_id = f"{split}/{index}"
                return EvalItem(
                    id=item_id,
                    benchmark=NAME,
                    question="",
                    answer=classes[value],
                    kind="label",
                    array=ArrayRef(path, f"{split}_images", index),
                    group=item_id,  # MedMNIST publishes no patient ids: each image is its own group
                    label=value,
                    classes=classes,
                    split=split,
                )

            out.add(f"{split} image {index}", build)
    return out.result()


def read_image(ref: ArrayRef) -> np.ndarray:
    """One image of the npz, read alone: the member is seeked, never loaded whole."""
    with _open(ref.file) as zf:
        shape, dtype, fortran, offset = _header(zf, ref.key, ref.file)
        if not 0 <= ref.index < shape[0]:
            raise BenchmarkError(f"{ref.file} has no image {ref.index} in {ref.key}", "Reload the benchmark")
        if fortran:
            raise BenchmarkError(f"The array {ref.key} in {ref.file} is in Fortran order", "Save it in C order")
        per_image = int(np.prod(shape[1:])) * dtype.itemsize
        with zf.open(f"{ref.key}.npy") as f:
            f.seek(offset + ref.index * per_image)
            data = f.read(per_image)
    if len(data) != per_image:
        raise BenchmarkError(f"The array {ref.key} in {ref.file} is truncated", "Give an intact MedMNIST npz")
    return np.frombuffer(data, dtype=dtype).reshape(shape[1:])


def image_png(ref: ArrayRef, cache: Path) -> Path:
    """The image as a PNG file under `cache`, written once: the name carries the npz's path, size and time, so a
    changed file gets new PNGs."""
    from PIL import Image

    st = ref.file.stat()
    tag = hashlib.sha256(f"{ref.file.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache / f"{ref.file.stem}-{tag}" / f"{ref.key}-{ref.index}.png"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        Image.fromarray(read_image(ref)).save(tmp, format="PNG")
        os.replace(tmp, target)  # atomic: a concurrent reader never sees half a PNG
    return target
