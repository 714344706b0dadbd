"""Checked reading shared by the loaders: files (existence, size, UTF-8), JSON/JSONL/CSV with positions, typed
fields, image paths confined to their folder, and the collector that turns a bad item into an error or a skip."""

from __future__ import annotations

import csv
import io
import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from vesalius.eval.errors import BenchmarkError, ItemProblem
from vesalius.eval.items import EvalItem, Loaded, Skipped
from vesalius.vision.errors import StudyError
from vesalius.vision.source import open_regular, read_limited

# Benchmark files are read whole into memory; the largest published one (PMC-VQA train.csv) is well under this.
MAX_FILE_BYTES = 512 * 1024 * 1024

SKIP_REMEDY = "Fix or remove that item, or run with --skip-bad to skip bad items (each is listed with its reason)"


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def check_file(path: Path, what: str = "benchmark file") -> int:
    """The size of `path`, a regular file under the size limit, or a BenchmarkError saying what it is instead."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BenchmarkError(f"The {what} {path} does not exist", "Check the path") from None
    except OSError as e:
        raise BenchmarkError(f"The {what} {path} cannot be read ({e.strerror})", "Check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise BenchmarkError(f"The {what} {path} is a folder, not a file", "Give the data file inside it")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise BenchmarkError(f"The {what} {path} is not a regular file", "Give a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise BenchmarkError(
            f"The {what} {path} is {_mb(st.st_size)}, over the {_mb(MAX_FILE_BYTES)} limit for benchmark files",
            "Check that it is the right file, or split it into smaller files",
        )
    return st.st_size


def read_text(path: Path, what: str = "benchmark file") -> str:
    check_file(path, what)  # a named error for a missing file, a folder or one past the limit
    try:
        # Checked again on the descriptor actually read, and read no further than the limit: the file may have
        # been swapped for a FIFO or grown since it was checked.
        with open_regular(path, f"the {what} {path}") as f:
            data = read_limited(f, f"the {what} {path}", MAX_FILE_BYTES)
    except StudyError as e:
        raise BenchmarkError(e.problem, e.remedy) from None
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark (spreadsheet exports) is not content
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise BenchmarkError(
            f"The {what} {path} is not UTF-8 text: byte {e.start} (line {line}) cannot be decoded",
            "Convert the file to UTF-8",
        ) from None


class DupObject(dict):
    """A JSON object that had a key twice: json would silently keep the last value; `pairs` keeps all of them."""

    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    dup = DupObject(obj)
    dup.pairs = pairs
    return dup


def parse_json(text: str, line: int | None = None) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}" if line is None else f"column {e.colno}"
        raise ItemProblem(f"it is not valid JSON: {e.msg} at {where}") from None
    except RecursionError:
        raise ItemProblem("its JSON is nested too deeply") from None


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return parse_json(text)
    except ItemProblem as e:
        raise BenchmarkError(f"The benchmark file {path}: {e}", "Fix the file or give the right one") from None


def expect_top(value: Any, kind: type, path: Path, described: str) -> None:
    if not isinstance(value, kind):
        raise BenchmarkError(
            f"The benchmark file {path} holds {a_type(value)} at the top, where this format has {described}",
            "Check that the file matches the benchmark name",
        )


def jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line."""
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if line.strip():
            yield number, line


def csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """(line number, row) of each data row, with the file read and the required columns checked at once.
    A row with the wrong number of fields comes as a row that `Record` rejects, naming the count."""
    # strict: a stray or unclosed quote is an error, not a field that silently swallows the rest of the file
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise BenchmarkError(
            f"The CSV file {path} is not valid CSV at line {reader.line_num}: {e}", "Fix the file"
        ) from None
    if header is None:
        raise BenchmarkError(f"The CSV file {path} is empty", "Give the benchmark's CSV file")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise BenchmarkError(f"The CSV file {path} repeats a column name in its header", "Rename the columns")
    missing = [c for c in required if c not in header]
    if missing:
        raise BenchmarkError(
            f"The CSV file {path} lacks the column(s) {', '.join(missing)} (its header: {', '.join(header)})",
            "Check that the file matches the benchmark name",
        )
    return _rows(path, reader, header)


def _rows(path: Path, reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield line, RowError(f"it has {len(row)} fields where the header has {len(header)}")
                continue
            yield line, dict(zip(header, row, strict=True))
    except csv.Error as e:  # the reader cannot resynchronise after this: the file itself is broken
        raise BenchmarkError(
            f"The CSV file {path} is not valid CSV at line {reader.line_num}: {e}", "Fix the file"
        ) from None


def type_name(value: Any) -> str:
    return {dict: "object", DupObject: "object", list: "array", str: "text", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def a_type(value: Any) -> str:
    """The type with its article, for messages: "an array", "a number", "text", "null"."""
    name = type_name(value)
    if name in ("text", "null"):
        return name
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


class RowError(str):
    """A CSV row that cannot become a record, and why: reported as its item's problem."""


class Record:
    """Typed access to one JSON object or CSV row; each wrong field is an ItemProblem naming the field."""

    def __init__(self, raw: Any):
        if isinstance(raw, RowError):
            raise ItemProblem(str(raw))
        if not isinstance(raw, dict):
            raise ItemProblem(f"it is {a_type(raw)}, not an object")
        if isinstance(raw, DupObject):
            seen: set[str] = set()
            twice = next(k for k, _ in raw.pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            raise ItemProblem(f"it has the field {twice!r} twice")
        self.raw: dict[str, Any] = raw

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def _get(self, key: str) -> Any:
        if key not in self.raw:
            raise ItemProblem(f"the field {key!r} is missing")
        return self.raw[key]

    def text(self, key: str, *, empty_ok: bool = False) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise ItemProblem(f"the field {key!r} is {a_type(value)}, not text")
        if not empty_ok and not value.strip():
            raise ItemProblem(f"the field {key!r} is empty")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key, empty_ok=True) if self.has(key) else None

    def scalar(self, key: str) -> str:
        """Text, or a number written as text: answers and ids are numbers in some published files."""
        value = self._get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return self.text(key)

    def integer(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ItemProblem(f"the field {key!r} is {a_type(value)}, not an integer")
        return value

    def text_list(self, key: str) -> list[str]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ItemProblem(f"the field {key!r} is not an array of text")
        return value

    def text_map(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if isinstance(value, DupObject):
            raise ItemProblem(f"the field {key!r} has a key twice")
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ItemProblem(f"the field {key!r} is not an object of text values")
        return value

    def kind(self, key: str) -> str:
        """OPEN/CLOSED answer types, normalised: published files carry stray spaces ("CLOSED ")."""
        value = self.text(key).strip().upper()
        if value not in ("OPEN", "CLOSED"):
            raise ItemProblem(f"the field {key!r} is {self.raw[key]!r}, not OPEN or CLOSED")
        return value.lower()


def images_root(images: Path | None, default: Path, path: Path) -> Path:
    """The folder image paths are relative to: `images`, or the benchmark's default beside the data file."""
    root = default if images is None else images
    if not root.exists():
        given = "" if images is not None else f" (the default for {path.name}; pass --images to give another)"
        raise BenchmarkError(f"The images folder {root} does not exist{given}", "Give the folder that holds the images")
    if not root.is_dir():
        raise BenchmarkError(f"The images folder {root} is not a folder", "Give the folder that holds the images")
    return root.resolve()


def no_images(images: Path | None, benchmark: str) -> None:
    if images is not None:
        raise BenchmarkError(
            f"The {benchmark} benchmark has no image files, but an images folder was given", "Drop --images"
        )


def image_path(root: Path, name: str) -> Path:
    """`name` inside `root`, which it must not leave (`..`, an absolute path, a link out), and which must exist."""
    if not name.strip():
        raise ItemProblem("its image name is empty")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise ItemProblem(f"its image {name!r} is an absolute path; image paths are relative to the images folder")
    if "\x00" in name:
        raise ItemProblem(f"its image name {name!r} holds a NUL character")
    full = (root / name).resolve()
    if not full.is_relative_to(root):
        raise ItemProblem(f"its image {name!r} points outside the images folder {root}")
    try:
        st = full.stat()
    except OSError:
        raise ItemProblem(f"its image {name!r} does not exist in {root}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ItemProblem(f"its image {name!r} in {root} is not a file")
    return full


def qid_ref(n: int, raw: object) -> str:
    """How an error names an item of a JSON array: its position, and its qid when it has one."""
    return f"item {n}" + (f" (qid {raw['qid']!r})" if isinstance(raw, dict) and "qid" in raw else "")


def vqa_fields(r: Record, root: Path | None, image_key: str) -> dict[str, Any]:
    """What the VQA-RAD, SLAKE and PathVQA layouts share: the question, its answer and kind, and the image
    (confined to `root`; none without one), whose name is also the item's group."""
    name = r.text(image_key)
    return {
        "question": r.text("question"),
        "answer": r.scalar("answer"),
        "kind": r.kind("answer_type"),
        "image": None if root is None else image_path(root, name),
        "group": name,
    }


class Collector:
    """Builds a benchmark's items one by one: a bad item raises a BenchmarkError naming file and item, or with
    skip_bad is listed as skipped with its reason. Duplicate ids are bad items too (the second one)."""

    def __init__(self, benchmark: str, source: Path, skip_bad: bool):
        self.benchmark, self.source, self.skip_bad = benchmark, source, skip_bad
        self.items: list[EvalItem] = []
        self.skipped: list[Skipped] = []
        self._ids: dict[str, str] = {}

    def bad(self, ref: str, reason: str) -> None:
        if not self.skip_bad:
            raise BenchmarkError(f"{self.source}: {ref}: {reason}", SKIP_REMEDY)
        self.skipped.append(Skipped(ref, reason))

    def add(self, ref: str, build: Callable[[], EvalItem]) -> None:
        try:
            item = build()
        except ItemProblem as e:
            self.bad(ref, str(e))
            return
        if item.id in self._ids:
            self.bad(ref, f"its id {item.id!r} is already used by {self._ids[item.id]}")
            return
        self._ids[item.id] = ref
        self.items.append(item)

    def result(self) -> Loaded:
        if not self.items and not self.skipped:
            raise BenchmarkError(f"The benchmark file {self.source} holds no items", "Give a file with items")
        return Loaded(self.benchmark, self.source, tuple(self.items), tuple(self.skipped))
