"""A series of DICOM slices (a folder, a zip or a DICOMDIR) into one volume ordered along the slice normal.

Two passes keep memory at the size of the volume: headers first (to choose the series, order the slices and check
the limits), then each slice decoded straight into a preallocated array, one file in memory at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom

from vesalius.vision import coded
from vesalius.vision import dicom_pixels as px
from vesalius.vision.deid import DeidRecord, deidentify, merge_records
from vesalius.vision.dicom_read import guarded, is_dicomdir, number, read_dataset
from vesalius.vision.dicom_study import check_syntax, decode_into, finish, header_facts, load_file
from vesalius.vision.errors import LimitError, StudyError
from vesalius.vision.options import IngestOptions
from vesalius.vision.sniff import HEAD_BYTES, is_dicom
from vesalius.vision.source import Budget, Spool, TooLargeError, contained, open_regular, read_head
from vesalius.vision.study import DicomRef, FrameSource, Study, StudySummary


@dataclass(frozen=True)
class Member:
    """One file of the series: a label (its path relative to what was opened) and how to open it."""

    label: str
    open: Callable[[], BinaryIO]
    path: Path | None = None  # the file on disk (not for zip members), for decoders that need one
    budget: Budget | None = None  # what the whole load may still inflate (zip members)


@dataclass
class Members:
    """The files found, and what was left out while finding them (links leading out, pipes ...), for the notes."""

    items: list[Member]
    skipped: list[str] = dataclasses.field(default_factory=list)


@dataclass
class _Slice:
    """What ordering needs from one file's header. Parsed headers are not kept (each costs tens of kilobytes,
    which for a 512-slice series would outweigh the volume), except one per series for the summary."""

    member: Member
    record: DeidRecord
    series: str
    number: int | None
    modality: str
    frames: int
    shape: tuple[int, int]
    position: np.ndarray | None
    orientation: np.ndarray | None
    instance: float | None
    dicom: DicomRef | None


def folder_members(root: Path, options: IngestOptions) -> Members:
    """Regular files under `root`, hidden ones aside. Links are followed only to files inside `root` (a link to
    /etc/passwd or to another patient's folder is left out, and said so); linked folders are not entered;
    pipes, sockets and devices are never opened."""
    real_root = root.resolve()
    found = Members([])
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            found.skipped.append("unreadable folder")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            reason = _entry_problem(entry, path, real_root)
            if reason == "folder":
                pending.append(path)
            elif reason:
                found.skipped.append(reason)
            else:
                label = _shown_name(str(path.relative_to(root)))
                found.items.append(Member(label, _file_opener(path, real_root), path))
                _check_count(len(found.items), root.name, options)
    found.items.sort(key=lambda m: m.label)
    return found


def _entry_problem(entry: os.DirEntry, path: Path, real_root: Path) -> str | None:
    """None for a file to read, "folder" for one to enter, else why the entry is left out."""
    try:
        if entry.is_symlink():
            real = contained(real_root, path)
            if real is None:
                return "link leading outside the folder (or broken)"
            return None if real.is_file() else "linked folder or special file (not followed)"
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        return None if entry.is_file(follow_symlinks=False) else "not a regular file (pipe, socket or device)"
    except OSError:
        return "unreadable"


def _file_opener(path: Path, real_root: Path) -> Callable[[], BinaryIO]:
    def open_() -> BinaryIO:
        # Checked again at open: the entry may have been swapped for a link leading out since it was listed.
        real = contained(real_root, path)
        if real is None:
            raise StudyError(f"{path.name} now leads outside the folder", "Open the folder again")
        return open_regular(real, path.name, follow_links=False)

    return open_


def zip_members(path: Path, stream: BinaryIO, options: IngestOptions) -> Members:
    """The zip's files, read from `stream` (the archive, already opened and checked as a regular file). Nothing
    the archive declares is trusted: members are inflated in chunks, counted against the per-file limit and the
    load's `max_archive_bytes`, and a member that is not DICOM is left after its first bytes."""
    _check_count(_declared_entries(stream), path.name, options)
    try:
        archive = zipfile.ZipFile(stream)
        infos = [i for i in archive.infolist() if not i.is_dir() and not Path(i.filename).name.startswith(".")]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise StudyError(f"{path.name} is a damaged zip archive ({exc})", "Create the archive again") from exc
    _check_count(len(infos), path.name, options)
    total = sum(i.file_size for i in infos)
    if total > options.max_archive_bytes or any(i.file_size > options.max_file_bytes for i in infos):
        # An early refusal on the declared sizes; the bytes actually inflated are counted as well (`Budget`).
        raise StudyError(
            f"{path.name} would expand to {total / 1024**3:.1f} GB, over the limits", "Open fewer slices at a time"
        )
    budget = Budget(options.max_archive_bytes, f"the members of {path.name}")

    def opener(info: zipfile.ZipInfo, label: str) -> Callable[[], BinaryIO]:
        def open_() -> BinaryIO:
            try:
                return archive.open(info)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
                # encrypted, an unsupported compression method, a bad local header ...
                raise StudyError(f"{label} in {path.name} cannot be opened ({exc})", "Create the zip again") from exc

        return open_

    labels = [_shown_name(i.filename) for i in infos]
    return Members([Member(label, opener(i, label), budget=budget) for i, label in zip(infos, labels, strict=True)])


def _declared_entries(stream: BinaryIO) -> int:
    """The entry count in the zip's end record, read before ZipFile builds an object for every entry (a small
    archive can declare millions). 0 where the record cannot be read: ZipFile then reports the damage."""
    try:
        record = zipfile._EndRecData(stream)  # type: ignore[attr-defined]  # stable since Python 2
        return int(record[zipfile._ECD_ENTRIES_TOTAL]) if record else 0  # type: ignore[attr-defined]
    except (AttributeError, IndexError, OSError, ValueError, TypeError):
        return 0
    finally:
        stream.seek(0)


def _shown_name(name: str) -> str:
    """A file's name as shown in notes, sources and the prompt: whoever made the archive or folder chose it, so
    control characters are replaced and its length capped."""
    clean = coded.printable(name)
    return clean if len(clean) <= 120 else f"{clean[:50]}...{clean[-50:]}"


def dicomdir_members(path: Path, ds: pydicom.Dataset, options: IngestOptions) -> Members:
    """The image files a DICOMDIR lists. ReferencedFileID is relative to the DICOMDIR's folder, and only files
    inside that folder are read: an absolute path, a '..' or a link leading out is left out, and said so."""
    with guarded(path.name):
        ids = [r.ReferencedFileID for r in ds.get("DirectoryRecordSequence") or [] if "ReferencedFileID" in r]
    _check_count(len(ids), path.name, options)
    root = path.parent
    real_root = root.resolve()
    found = Members([])
    for file_id in ids:
        parts = _file_id_parts(file_id)
        candidate = _existing(root, parts) if parts else None
        real = contained(real_root, candidate) if candidate is not None else None
        if parts is None or (candidate is not None and real is None):
            found.skipped.append("reference outside the DICOMDIR's folder")
        elif candidate is None:
            found.skipped.append("listed but missing")
        else:
            label = _shown_name(str(candidate.relative_to(root)))
            found.items.append(Member(label, _file_opener(candidate, real_root), real))
    if not found.items:
        outside = found.skipped.count("reference outside the DICOMDIR's folder")
        why = f" ({outside} refer outside that folder, which is never read)" if outside else ""
        raise StudyError(
            f"{path.name} lists {len(ids)} files but none of them is in {root.name}/{why}",
            "Copy the whole disc or folder, not only the DICOMDIR, and open the DICOMDIR inside it",
        )
    return found


def _file_id_parts(file_id: object) -> list[str] | None:
    """ReferencedFileID's components (PS3.10 8.5: a relative path, one component per value), or None when one
    of them could lead out of the folder (absolute, '..', a drive) or is empty."""
    if isinstance(file_id, str):
        values = [file_id]
    elif isinstance(file_id, (list, tuple, pydicom.multival.MultiValue)):
        values = [str(p) for p in file_id]
    else:  # a damaged element read as a number or bytes
        return None
    # Some writers put a whole path in one value: its separators split it here, and are checked like the rest.
    parts = [p.strip() for v in values for p in v.replace("\\", "/").split("/")]
    if not parts or any(p in ("", ".", "..") or ":" in p or "\0" in p for p in parts):
        return None
    return parts


def load_series(path: Path, kind: str, members: Members, options: IngestOptions) -> Study:
    skipped = list(members.skipped)
    slices, headers = _read_headers(members.items, options, skipped)
    if not slices:
        reason = f" ({_skip_summary(skipped)})" if skipped else ""
        raise StudyError(
            f"{path.name} holds no DICOM image the loader could read{reason}",
            "Open a folder, zip or DICOMDIR of DICOM image files (CT, MR, X-ray ...)",
        )
    chosen, notes, choices = _choose_series(slices, options, path.name)
    if len(chosen) == 1 or all(s.frames > 1 for s in chosen):
        # One file (or only multi-frame files) in the series: it is a study on its own.
        single = max(chosen, key=lambda s: s.frames)
        data = read_member(single.member, options)
        label = Path(single.member.label)
        ds = read_dataset(data, single.member.label)
        study = load_file(label, ds, hashlib.sha256(data).hexdigest()[:16], options, source=single.member.path)
        return replace(_as_source(study, path, kind, notes + _skip_notes(skipped)), series_choices=choices)
    ordered, order_notes = _order(c for c in chosen if c.frames == 1)
    with guarded(path.name):  # the kept header is read again here, and lazily parsed elements can still raise
        study = _stack(
            path, kind, ordered, headers[ordered[0].series], options, notes + order_notes + _skip_notes(skipped)
        )
    return replace(study, series_choices=choices)


@contextmanager
def _spooled(member: Member, options: IngestOptions) -> Iterator[Spool]:
    """The member, opened and read only as far as its reader goes; a zip member's damage (a bad CRC, a truncated
    stream) surfaces as a StudyError naming it."""
    try:
        with member.open() as stream:
            yield Spool(stream, member.label, options.max_file_bytes, member.budget)
    except StudyError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise StudyError(f"{member.label} is damaged or unreadable ({exc})", "Copy or export it again") from exc


def read_member(member: Member, options: IngestOptions) -> bytes:
    """The member's bytes, within the per-file limit and (for a zip) what the load may still inflate."""
    with _spooled(member, options) as spool:
        return spool.getvalue()


def _read_headers(
    members: list[Member], options: IngestOptions, skipped: list[str]
) -> tuple[list[_Slice], dict[str, pydicom.Dataset]]:
    slices, headers = [], {}
    for member in members:
        try:
            with _spooled(member, options) as spool:
                if not is_dicom(read_head(spool, HEAD_BYTES)):  # a non-DICOM file is left after its first bytes
                    skipped.append("unreadable")
                    continue
                spool.seek(0)
                header = read_dataset(spool, member.label, headers_only=True)
            with guarded(member.label):
                if is_dicomdir(header) or "Rows" not in header or "Columns" not in header:
                    skipped.append("not an image")
                    continue
                record = deidentify(header, options.deid)
                one = _Slice(
                    member=member,
                    record=record,
                    series=str(header.get("SeriesInstanceUID") or ""),
                    number=_series_number(header),
                    modality=coded.read(header, "Modality", []) or "?",  # quoted in notes: checked like the summary
                    frames=int(header.get("NumberOfFrames") or 1),
                    shape=(int(header.Rows), int(header.Columns)),
                    position=px.position(header, None),
                    orientation=px.orientation(header, None),
                    instance=number(header, "InstanceNumber"),
                    dicom=DicomRef.of(header),
                )
        except LimitError:
            raise
        except TooLargeError:
            skipped.append("over the size limit for one file")
            continue
        except StudyError:
            skipped.append("unreadable")
            continue
        slices.append(one)
        headers.setdefault(one.series, header)
    return slices, headers


def _choose_series(
    slices: list[_Slice], options: IngestOptions, name: str
) -> tuple[list[_Slice], list[str], tuple[tuple[int | None, str], ...]]:
    groups: dict[str, list[_Slice]] = defaultdict(list)
    for s in slices:
        groups[s.series].append(s)
    numbers = {uid: g[0].number for uid, g in groups.items()}

    def describe(uid: str) -> str:
        g = groups[uid]
        files = f"{len(g)} file{'s' if len(g) != 1 else ''}"
        return f"series {numbers[uid] if numbers[uid] is not None else '?'} ({g[0].modality}, {files})"

    if options.series is not None:
        matches = [uid for uid, n in numbers.items() if n == options.series]
        if not matches:
            raise StudyError(
                f"{name} has no series number {options.series}",
                f"Choose one of: {'; '.join(describe(uid) for uid in groups)}",
            )
        uid = matches[0]
    else:
        uid = max(groups, key=lambda u: (sum(s.frames for s in groups[u]), len(groups[u])))
    notes = []
    if len(groups) > 1:
        others = "; ".join(describe(u) for u in groups if u != uid)
        notes.append(
            f"{name} holds {len(groups)} series; showing {describe(uid)}. Others: {others}. "
            "Choose one with --series NUMBER"
        )
    choices = (
        tuple((numbers[u], describe(u)) for u in [uid, *(u for u in groups if u != uid)]) if len(groups) > 1 else ()
    )
    return groups[uid], notes, choices


def _order(slices: Iterable[_Slice]) -> tuple[list[_Slice], list[str]]:
    """Slices along the normal of their plane (ImagePositionPatient . (row x column)), the only order that is
    right for every scanner; InstanceNumber and file names are a fallback with a warning."""
    slices = list(slices)
    notes: list[str] = []
    shape = Counter(s.shape for s in slices).most_common(1)[0][0]
    mismatched = [s for s in slices if s.shape != shape]
    if mismatched:
        notes.append(f"{len(mismatched)} file(s) of another image size left out of the volume")
        slices = [s for s in slices if s not in mismatched]
    iop = slices[0].orientation
    if iop is None or any(s.position is None for s in slices):
        notes.append("slices carry no ImagePositionPatient/ImageOrientationPatient: ordered by InstanceNumber")
        slices.sort(key=lambda s: (s.instance or 0, s.member.label))
        return slices, notes
    normal = np.cross(iop[:3], iop[3:])
    depth = {id(s): float(np.dot(s.position, normal)) for s in slices}
    slices.sort(key=lambda s: (depth[id(s)], s.member.label))
    kept, seen = [], set()
    for s in slices:
        key = round(depth[id(s)], 3)
        if key not in seen:
            seen.add(key)
            kept.append(s)
    if len(kept) < len(slices):
        notes.append(
            f"{len(slices) - len(kept)} slice(s) repeat a position already present (several phases or repeated "
            "acquisitions in one series): the first at each position is shown"
        )
    steps = np.diff([depth[id(s)] for s in kept])
    if len(steps) > 1:
        median = float(np.median(steps))
        if float(np.max(np.abs(steps - median))) > 0.1 * median + 0.01:
            notes.append(
                f"slice spacing is uneven ({float(steps.min()):.2f} to {float(steps.max()):.2f} mm): slices may be "
                "missing, so distances along the stack are approximate"
            )
    return kept, notes


def _stack(
    path: Path, kind: str, slices: list[_Slice], first: pydicom.Dataset, options: IngestOptions, notes: list[str]
) -> Study:
    geo = px.geometry(first, slices[0].member.label, options)
    colour = geo.samples == 3 or str(first.get("PhotometricInterpretation") or "") == "PALETTE COLOR"
    px.check_voxels(len(slices) * geo.rows * geo.columns, geo.samples, path.name, options)
    shape = (len(slices), geo.rows, geo.columns) + ((3,) if colour else ())
    volume = np.empty(shape, dtype=np.float32)
    digest = hashlib.sha256()
    unit, top = None, 255.0
    for i, s in enumerate(slices):
        data = read_member(s.member, options)
        digest.update(data)
        with guarded(s.member.label):
            # Only the pixel module is read from this full parse; every identifying attribute was handled in
            # the de-identified header of the same file.
            ds = read_dataset(data, s.member.label)
            check_syntax(ds, s.member.label)
            unit, top = decode_into(volume[i], ds, s.member.label, None, source=s.member.path)
    spacing = None
    header_notes: list[str] = []
    if all(s.position is not None for s in slices) and len(slices) > 1:
        steps = np.diff(np.asarray([s.position for s in slices]), axis=0)
        spacing = float(np.median(np.linalg.norm(steps, axis=1)))
    record = merge_records([s.record for s in slices])
    summary = StudySummary(
        study_id=digest.hexdigest()[:16],
        source_format="dicom",
        source_kind=kind,
        rows=geo.rows,
        columns=geo.columns,
        stack="volume" if len(slices) > 1 else "single",
        frames=len(slices),
        source_frames=len(slices),
        frame_shown=len(slices) // 2,
        colour=colour,
        physical_unit=coded.unit(unit, header_notes),
        slice_spacing_mm=spacing,
        **header_facts(first, record, header_notes),
    )
    sources = tuple(FrameSource(s.member.label, None, s.dicom) for s in slices)
    warnings = (*header_notes, *notes)
    return finish(path, summary, volume, sources, record, first, key_frame=None, colour_max=top, warnings=warnings)


def _as_source(study: Study, path: Path, kind: str, notes: list[str]) -> Study:
    summary = study.summary.model_copy(update={"source_kind": kind})
    return dataclasses.replace(study, path=path, summary=summary, warnings=(*study.warnings, *notes))


def _series_number(ds: pydicom.Dataset) -> int | None:
    value = number(ds, "SeriesNumber")
    return int(value) if value is not None else None


def _existing(root: Path, parts: list[str]) -> Path | None:
    candidate = root.joinpath(*parts)
    if candidate.is_file():
        return candidate
    # Discs are written in upper case and copied to case-sensitive file systems in any case.
    for variant in (root.joinpath(*(p.lower() for p in parts)), root.joinpath(*(p.upper() for p in parts))):
        if variant.is_file():
            return variant
    return None


def _check_count(count: int, name: str, options: IngestOptions) -> None:
    if count > options.max_files:
        raise StudyError(
            f"{name} holds {count:,} files, over the {options.max_files:,} limit", "Open one series at a time"
        )


def _skip_summary(skipped: list[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in Counter(skipped).items())


def _skip_notes(skipped: list[str]) -> list[str]:
    return [f"files left out: {_skip_summary(skipped)}"] if skipped else []
