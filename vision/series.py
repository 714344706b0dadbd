"""A series of DICOM slices (a folder, a zip or a DICOMDIR) into one volume ordered along the slice normal.

Two passes keep memory at the size of the volume: headers first (to choose the series, order the slices and check
the limits), then each slice decoded straight into a preallocated array, one file in memory at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from vision import dicom_pixels as px
from vision.deid import DeidRecord, deidentify, merge_records
from vision.dicom_read import guarded, is_dicomdir, number, read_dataset
from vision.dicom_study import decode_into, finish, header_facts, load_file
from vision.errors import StudyError
from vision.options import IngestOptions
from vision.study import FrameSource, Study, StudySummary


@dataclass(frozen=True)
class Member:
    """One file of the series: a label (its path relative to what was opened) and how to get its bytes."""

    label: str
    read: Callable[[], bytes]
    path: Path | None = None  # the file on disk (not for zip members), for decoders that need one


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


def folder_members(root: Path, options: IngestOptions) -> list[Member]:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
    _check_count(len(files), root.name, options)
    return [Member(str(p.relative_to(root)), p.read_bytes, p) for p in files]


def zip_members(path: Path, options: IngestOptions) -> list[Member]:
    try:
        archive = zipfile.ZipFile(path)
        infos = [i for i in archive.infolist() if not i.is_dir() and not Path(i.filename).name.startswith(".")]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise StudyError(f"{path.name} is a damaged zip archive ({exc})", "Create the archive again") from exc
    _check_count(len(infos), path.name, options)
    total = sum(i.file_size for i in infos)
    if total > options.max_voxels * 8 or any(i.file_size > options.max_file_bytes for i in infos):
        # Checked on the declared sizes, before inflating anything: a zip bomb is refused here.
        raise StudyError(
            f"{path.name} would expand to {total / 1024**3:.1f} GB, over the limits", "Open fewer slices at a time"
        )

    def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                return archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:  # bad CRC, truncated member ...
                raise StudyError(f"{info.filename} in {path.name} is damaged ({exc})", "Create the zip again") from exc

        return read

    return [Member(i.filename, reader(i)) for i in infos]


def dicomdir_members(path: Path, ds: pydicom.Dataset, options: IngestOptions) -> list[Member]:
    """The image files a DICOMDIR lists (ReferencedFileID is relative to the DICOMDIR's folder)."""
    with guarded(path.name):
        ids = [r.ReferencedFileID for r in ds.get("DirectoryRecordSequence") or [] if "ReferencedFileID" in r]
    _check_count(len(ids), path.name, options)
    members, missing = [], 0
    for file_id in ids:
        parts = [str(file_id)] if isinstance(file_id, str) else [str(p) for p in file_id]
        found = _existing(path.parent, parts)
        if found is None:
            missing += 1
        else:
            members.append(Member(str(found.relative_to(path.parent)), found.read_bytes, found))
    if not members:
        raise StudyError(
            f"{path.name} lists {len(ids)} files but none of them is in {path.parent.name}/",
            "Copy the whole disc or folder, not only the DICOMDIR, and open the DICOMDIR inside it",
        )
    return members


def load_series(path: Path, kind: str, members: list[Member], options: IngestOptions) -> Study:
    skipped: list[str] = []
    slices, headers = _read_headers(members, options, skipped)
    if not slices:
        reason = f" ({_skip_summary(skipped)})" if skipped else ""
        raise StudyError(
            f"{path.name} holds no DICOM image the loader could read{reason}",
            "Open a folder, zip or DICOMDIR of DICOM image files (CT, MR, X-ray ...)",
        )
    chosen, notes = _choose_series(slices, options, path.name)
    if len(chosen) == 1 or all(s.frames > 1 for s in chosen):
        # One file (or only multi-frame files) in the series: it is a study on its own.
        single = max(chosen, key=lambda s: s.frames)
        data = single.member.read()
        label = Path(single.member.label)
        ds = read_dataset(data, single.member.label)
        study = load_file(label, ds, hashlib.sha256(data).hexdigest()[:16], options, source=single.member.path)
        return _as_source(study, path, kind, notes + _skip_notes(skipped))
    ordered, order_notes = _order(c for c in chosen if c.frames == 1)
    with guarded(path.name):  # the kept header is read again here, and lazily parsed elements can still raise
        return _stack(
            path, kind, ordered, headers[ordered[0].series], options, notes + order_notes + _skip_notes(skipped)
        )


def _read_headers(
    members: list[Member], options: IngestOptions, skipped: list[str]
) -> tuple[list[_Slice], dict[str, pydicom.Dataset]]:
    slices, headers = [], {}
    for member in members:
        try:
            header = read_dataset(member.read(), member.label, headers_only=True)
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
                    modality=str(header.get("Modality") or "?"),
                    frames=int(header.get("NumberOfFrames") or 1),
                    shape=(int(header.Rows), int(header.Columns)),
                    position=px.position(header, None),
                    orientation=px.orientation(header, None),
                    instance=number(header, "InstanceNumber"),
                )
        except StudyError:
            skipped.append("unreadable")
            continue
        slices.append(one)
        headers.setdefault(one.series, header)
    return slices, headers


def _choose_series(slices: list[_Slice], options: IngestOptions, name: str) -> tuple[list[_Slice], list[str]]:
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
    return groups[uid], notes


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
        data = s.member.read()
        digest.update(data)
        with guarded(s.member.label):
            # Only the pixel module is read from this full parse; every identifying attribute was handled in
            # the de-identified header of the same file.
            ds = read_dataset(data, s.member.label)
            unit, top = decode_into(volume[i], ds, s.member.label, None, source=s.member.path)
    spacing = None
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
        physical_unit=unit,
        slice_spacing_mm=spacing,
        **header_facts(first, record),
    )
    sources = tuple(FrameSource(s.member.label) for s in slices)
    return finish(path, summary, volume, sources, record, first, key_frame=None, colour_max=top, warnings=tuple(notes))


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
