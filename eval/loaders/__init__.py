"""Benchmark loaders, one per published format, by name. Each is `load(path, images, *, skip_bad) -> Loaded`:
`path` the benchmark file (a folder for class-folders), `images` the images folder where the format has one
(None: the format's default beside the file), `skip_bad` to list bad items as skipped instead of stopping at
the first. Every failure is a `BenchmarkError` naming the file and item; see docs/evaluation-data.md."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import Loaded
from vesalius.eval.loaders import class_folders, jsonl, medmnist, medqa, pathvqa, pmc_vqa, pubmedqa, slake, vqa_rad


class Loader(Protocol):
    def __call__(self, path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded: ...


LOADERS: dict[str, Loader] = {
    vqa_rad.NAME: vqa_rad.load,
    slake.NAME: slake.load,
    slake.QUESTIONS_NAME: slake.load_questions,
    pathvqa.NAME: pathvqa.load,
    pmc_vqa.NAME: pmc_vqa.load,
    medqa.NAME: medqa.load,
    pubmedqa.NAME: pubmedqa.load,
    medmnist.NAME: medmnist.load,
    class_folders.NAME: class_folders.load,
    jsonl.NAME: jsonl.load,
}


def load_benchmark(name: str, path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    try:
        loader = LOADERS[name]
    except KeyError:
        raise BenchmarkError(f"There is no benchmark format {name!r}", f"Use one of {', '.join(LOADERS)}") from None
    return loader(Path(path), None if images is None else Path(images), skip_bad=skip_bad)


__all__ = ["LOADERS", "Loader", "load_benchmark"]
