"""A folder of class subfolders (`NORMAL/`, `PNEUMONIA/`, ...): every image file below a class folder is an item
of kind "label"; classes are the subfolder names in sorted order, the label is the class's position. Image files
end in .png, .jpg, .jpeg, .tif, .tiff or .dcm (any case); names starting with "." are ignored, as are files beside
the class folders (a README). Any other file inside a class folder is a bad item.

The id is the path relative to the folder. The group is the patient where the file name follows the Kermany chest
X-ray naming (`person123_bacteria_456.jpeg` -> `person123`, `IM-0640-0001.jpeg` -> `IM-0640`,
`NORMAL2-IM-1018-0001.jpeg` -> `NORMAL2-IM-1018`), so a by-group split keeps a patient on one side; otherwise it is
the file's relative path."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from vesalius.eval.errors import BenchmarkError, ItemProblem
from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, no_images

NAME = "class-folders"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")
_PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL\d*-)?IM-\d+)-")


def patient(name: str) -> str | None:
    m = _PATIENT.match(name)
    return (m.group(1) or m.group(2)) if m else None


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    no_images(images, NAME)  # the images are the folder itself
    if not path.exists():
        raise BenchmarkError(f"The class folder {path} does not exist", "Check the path")
    if not path.is_dir():
        raise BenchmarkError(
            f"{path} is a file, where class-folders reads a folder of class subfolders", "Give the folder"
        )
    root = path.resolve()
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise BenchmarkError(
            f"The folder {path} has no class subfolders", "Give a folder like train/ with NORMAL/, ..."
        )
    out = Collector(NAME, path, skip_bad)
    for label, name in enumerate(classes):
        for file in sorted((root / name).rglob("*")):
            rel = file.relative_to(root).as_posix()
            if any(part.startswith(".") for part in file.relative_to(root).parts) or file.is_dir():
                continue

            def build(file: Path = file, rel: str = rel, label: int = label, name: str = name) -> EvalItem:
                if file.suffix.lower() not in EXTENSIONS:
                    raise ItemProblem(f"it is not an image file ({', '.join(EXTENSIONS)})")
                real = file.resolve()
                if not real.is_relative_to(root):
                    raise ItemProblem(f"it is a link to {real}, outside the folder")
                try:
                    st = real.stat()
                except OSError:
                    raise ItemProblem("it is a broken link") from None
                if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                    raise ItemProblem("it is not a regular file, or it is empty")
                return EvalItem(
                    id=rel,
                    benchmark=NAME,
                    question="",
                    answer=name,
                    kind="label",
                    image=real,
                    group=patient(file.name) or rel,
                    label=label,
                    classes=classes,
                )

            out.add(rel, build)
    return out.result()
