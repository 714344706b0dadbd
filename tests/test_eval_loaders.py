"""Benchmark loaders (vesalius.eval.loaders): each published format on the shared data where present and on small
files written here in that format, every hostile-input rule (a BenchmarkError naming file and item, or a skipped
entry under skip_bad, never a traceback), and the by-group development split."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem, split_by_group
from vesalius.eval.loaders import LOADERS, _read, load_benchmark
from vesalius.eval.loaders.medmnist import image_png, read_image

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def images(folder: Path, *names: str) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(JPEG)
    return folder


def rad(qid: object = 1, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "qid": qid,
        "image_name": "synpic1.jpg",
        "image_organ": "HEAD",
        "answer": "Yes",
        "answer_type": "CLOSED",
        "question_type": "PRES",
        "question": "Is there a bleed?",
        "phrase_type": "freeform",
    }
    return row | changes


@pytest.fixture
def rad_file(tmp_path):
    """`make(rows)`: a VQA-RAD trainset.json with images/synpic1.jpg and synpic2.jpg beside it."""
    images(tmp_path / "images", "synpic1.jpg", "synpic2.jpg")

    def make(rows: list[object]) -> Path:
        return write_json(tmp_path / "trainset.json", rows)

    return make


# ---- the shared data ---------------------------------------------------------------------------------------------


SHARED_COUNTS = [
    ("vqa-rad", "vqa-rad/trainset.json", 3064, 0),
    ("slake-questions", "slake/train.json", 9834, 1),  # qid 1622 is published with an empty answer
    ("slake-questions", "slake/validate.json", 2099, 0),
    ("pathvqa", "pathvqa/train_subset.json", 3806, 0),
    ("medqa", "text-qa/medqa_sample50.jsonl", 50, 0),
    ("pubmedqa", "text-qa/pubmedqa_pqal_dev.json", 500, 0),
    ("medmnist", "medmnist/pneumoniamnist_trainval.npz", 4708 + 524, 0),
    ("medmnist", "medmnist/breastmnist_trainval.npz", 546 + 78, 0),
    ("class-folders", "kermany-cxr/train", 1341 + 3875, 0),
]


@pytest.mark.parametrize(("name", "rel", "count", "skipped"), SHARED_COUNTS, ids=[c[1] for c in SHARED_COUNTS])
def test_shared_files_load(shared_data, name, rel, count, skipped):
    loaded = load_benchmark(name, shared_data / rel, skip_bad=True)
    assert (len(loaded.items), len(loaded.skipped)) == (count, skipped)
    assert len({item.id for item in loaded.items}) == count
    for item in loaded.items:
        assert item.image is None or item.image.is_file()


def test_shared_vqa_rad_is_normalised(shared_data):
    items = load_benchmark("vqa-rad", shared_data / "vqa-rad/trainset.json").items
    assert {i.kind for i in items} == {"closed", "open"}
    assert sum(i.kind == "closed" for i in items) == 1823  # 1,821 "CLOSED" and 2 "CLOSED "
    types = {part for i in items for part in (i.question_type or "").split(", ")}
    assert not types & {"ATRIB", "PRSE", "Other"}
    assert all(i.group == i.image.name for i in items if i.image)
    assert all(isinstance(i.answer, str) for i in items)  # ten answers are published as numbers


def test_shared_slake_empty_answer_is_reported(shared_data):
    with pytest.raises(BenchmarkError, match=r"train\.json: item 1623 \(qid 1622\): the field 'answer' is empty"):
        load_benchmark("slake-questions", shared_data / "slake/train.json")
    loaded = load_benchmark("slake-questions", shared_data / "slake/validate.json")
    assert {i.language for i in loaded.items} == {"en", "zh"}
    assert all(i.image is None and i.group for i in loaded.items)


def test_shared_slake_needs_its_images(shared_data):
    with pytest.raises(BenchmarkError, match=r"images folder .*slake/imgs does not exist"):
        load_benchmark("slake", shared_data / "slake/validate.json")


def test_shared_kermany_groups_by_patient(shared_data):
    items = load_benchmark("class-folders", shared_data / "kermany-cxr/train").items
    assert {i.classes for i in items} == {("NORMAL", "PNEUMONIA")}
    groups = {i.group for i in items}
    assert len(groups) < len(items) and all("/" not in g for g in groups)
    train, dev = split_by_group(items)
    assert not {i.group for i in train} & {i.group for i in dev}


def test_shared_vqa_rad_split_by_image(shared_data):
    items = load_benchmark("vqa-rad", shared_data / "vqa-rad/trainset.json").items
    train, dev = split_by_group(items, dev_fraction=0.2, seed=0)
    assert len(train) + len(dev) == len(items)
    assert not {i.group for i in train} & {i.group for i in dev}  # no image on both sides
    groups = {i.group for i in items}
    assert 0.1 < len({i.group for i in dev}) / len(groups) < 0.3
    # Deterministic, whatever the order, and a different seed is a different split.
    _, again_dev = split_by_group(list(reversed(items)), dev_fraction=0.2, seed=0)
    assert {i.id for i in again_dev} == {i.id for i in dev}
    assert {i.id for i in split_by_group(items, seed=1)[1]} != {i.id for i in dev}


def test_shared_medmnist_reads_one_image(shared_data, tmp_path):
    loaded = load_benchmark("medmnist", shared_data / "medmnist/breastmnist_trainval.npz")
    item = loaded.items[-1]
    assert item.array is not None and (item.split, item.array.key) == ("val", "val_images")
    with np.load(item.array.file) as npz:
        expected = npz["val_images"][item.array.index]
    assert np.array_equal(read_image(item.array), expected)
    png = image_png(item.array, tmp_path / "cache")
    assert png.read_bytes().startswith(b"\x89PNG") and image_png(item.array, tmp_path / "cache") == png


# ---- each format, on files written here ---------------------------------------------------------------------------


def test_vqa_rad_format(rad_file):
    path = rad_file(
        [
            rad(1, answer_type="CLOSED ", question_type="ATRIB, prse"),
            rad(2, image_name="synpic2.jpg", answer=3, answer_type="OPEN", question="How many?"),
        ]
    )
    first, second = load_benchmark("vqa-rad", path).items
    assert (first.kind, first.question_type, first.group, first.extra) == (
        "closed",
        "ATTRIB, PRES",
        "synpic1.jpg",
        {"phrase_type": "freeform"},
    )
    assert (second.id, second.answer, second.kind) == ("2", "3", "open")
    assert second.image == (path.parent / "images" / "synpic2.jpg").resolve()


def test_slake_format(tmp_path):
    images(tmp_path / "imgs", "xmlab1/source.jpg")
    row = {"qid": 7, "img_id": 1, "img_name": "xmlab1/source.jpg", "question": "这是什么?", "answer": "CT"}
    row |= {"q_lang": "zh", "location": "Lung", "modality": "CT", "answer_type": "OPEN", "content_type": "Modality"}
    path = write_json(tmp_path / "train.json", [row])
    (item,) = load_benchmark("slake", path).items
    assert (item.id, item.language, item.organ_or_modality, item.question_type) == ("7", "zh", "Lung", "Modality")
    assert item.image == tmp_path.resolve() / "imgs/xmlab1/source.jpg" and item.extra["modality"] == "CT"
    assert load_benchmark("slake-questions", path).items[0].image is None


def test_pathvqa_format(tmp_path):
    images(tmp_path / "images", "a.jpg")
    row = {"image": "images/a.jpg", "question": "is this fat?", "answer": "yes", "answer_type": "CLOSED"}
    path = write_json(tmp_path / "train.json", [row | {"question_type": "YESNO"}, row])  # repeated rows are kept
    items = load_benchmark("pathvqa", path).items
    assert [i.id for i in items] == ["1", "2"] and items[0].question_type == "YESNO"


def write_pmc(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header or ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D"])
        w.writerows(rows)
    return path


PMC_HEADER = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]


def test_pmc_vqa_format(tmp_path):
    images(tmp_path / "images", "PMC1_F1.jpg")
    row = ["PMC1_F1.jpg", "What modality?", "CT", "A:MRI ", "B:CT", "C:X-ray", "", "B"]
    path = write_pmc(tmp_path / "test.csv", [row, row], PMC_HEADER)
    first, second = load_benchmark("pmc-vqa", path).items
    assert (first.id, second.id, first.kind, first.answer, first.answers) == ("1", "2", "choice", "B", ("CT",))
    assert first.options == {"A": "MRI", "B": "CT", "C": "X-ray"} and first.group == "PMC1_F1.jpg"


def test_medqa_format(tmp_path):
    row = {"question": "Q?", "options": {"A": "x", "B": "y"}, "answer_idx": "B", "answer": "y", "meta_info": "step1"}
    path = write_jsonl(tmp_path / "medqa.jsonl", [row, row | {"realidx": 9}])
    first, second = load_benchmark("medqa", path).items
    assert (first.id, second.id, first.answer, first.answers, first.extra) == (
        "L1",
        "9",
        "B",
        ("y",),
        {"meta_info": "step1"},
    )


def test_pubmedqa_format(tmp_path):
    row = {"QUESTION": "Does it?", "CONTEXTS": ["a", "b"], "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": ["Humans"]}
    row |= {"YEAR": "2001", "final_decision": "maybe", "LONG_ANSWER": "Perhaps."}
    (item,) = load_benchmark("pubmedqa", write_json(tmp_path / "p.json", {"123": row})).items
    assert (item.id, item.answer, item.kind) == ("123", "maybe", "closed")
    assert item.context == "BACKGROUND: a\n\nRESULTS: b"
    assert item.extra == {"long_answer": "Perhaps.", "year": "2001", "meshes": "Humans"}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_medmnist_format(tmp_path, save):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)}
    arrays |= {"train_labels": np.array([[0], [2], [1]], np.uint8), "test_images": arrays["train_images"][:1]}
    arrays |= {"test_labels": np.array([[2]], np.uint8)}
    path = tmp_path / "dermamnist.npz"
    save(path, **arrays)
    loaded = load_benchmark("medmnist", path)
    assert [i.id for i in loaded.items] == ["train/0", "train/1", "train/2", "test/0"]
    assert loaded.items[1].classes == ("0", "1", "2") and loaded.items[1].answer == "2"
    assert np.array_equal(read_image(loaded.items[2].array), arrays["train_images"][2])


def test_class_folders_format(tmp_path):
    images(tmp_path / "PNEUMONIA", "person3_virus_7.jpeg", "person3_bacteria_9.PNG")
    images(tmp_path / "NORMAL", "IM-0001-0001.jpeg", "sub/scan.dcm")
    (tmp_path / "README.md").write_text("about")
    (tmp_path / "NORMAL" / ".DS_Store").write_bytes(b"x")
    items = load_benchmark("class-folders", tmp_path).items
    assert [(i.id, i.label, i.group) for i in items] == [
        ("NORMAL/IM-0001-0001.jpeg", 0, "IM-0001"),
        ("NORMAL/sub/scan.dcm", 0, "NORMAL/sub/scan.dcm"),
        ("PNEUMONIA/person3_bacteria_9.PNG", 1, "person3"),
        ("PNEUMONIA/person3_virus_7.jpeg", 1, "person3"),
    ]


def test_generic_jsonl_format(tmp_path):
    images(tmp_path, "img/a.png")
    rows = [
        {"id": "q1", "question": "Which?", "answer": "A", "kind": "choice", "options": {"A": "x", "B": "y"}},
        {"id": 2, "question": "What?", "answer": "x", "answers": ["ex"], "kind": "open", "image": "img/a.png"},
        {"id": "c", "question": "", "answer": "b", "kind": "label", "label": 1, "classes": ["a", "b"], "group": "p1"},
    ]
    path = write_jsonl(tmp_path / "bench.jsonl", rows)
    path.write_text(path.read_text() + "\n\n")  # blank lines are not items
    first, second, third = load_benchmark("jsonl", path).items
    assert first.options == {"A": "x", "B": "y"} and first.group == "q1" and first.image is None
    assert (second.id, second.answers, second.group, second.image) == (
        "2",
        ("ex",),
        "img/a.png",
        tmp_path / "img/a.png",
    )
    assert (third.label, third.group) == (1, "p1")


# ---- hostile input ------------------------------------------------------------------------------------------------


def test_missing_file_and_folder_instead_of_file(tmp_path):
    with pytest.raises(BenchmarkError, match=r"nope\.json does not exist"):
        load_benchmark("vqa-rad", tmp_path / "nope.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(BenchmarkError, match=r"dir\.json is a folder, not a file"):
        load_benchmark("pubmedqa", tmp_path / "dir.json")
    with pytest.raises(BenchmarkError, match="is a file, where class-folders reads a folder"):
        load_benchmark("class-folders", write_json(tmp_path / "x.json", []))
    with pytest.raises(BenchmarkError, match="no class subfolders"):
        load_benchmark("class-folders", tmp_path / "dir.json")


def test_unknown_benchmark_and_images_for_text_benchmark(tmp_path):
    with pytest.raises(BenchmarkError, match="no benchmark format 'vqarad'.*Use one of vqa-rad"):
        load_benchmark("vqarad", tmp_path / "x.json")
    with pytest.raises(BenchmarkError, match="medqa benchmark has no image files.*Drop --images"):
        load_benchmark("medqa", tmp_path / "x.jsonl", images=tmp_path)


def test_invalid_json_names_the_position(rad_file, tmp_path):
    path = rad_file([])
    path.write_text('[\n  {"qid": 1,\n  "oops"\n]')
    with pytest.raises(BenchmarkError, match=r"trainset\.json: it is not valid JSON: .* at line 4, column 1"):
        load_benchmark("vqa-rad", path)


def test_wrong_top_level_type(rad_file, tmp_path):
    with pytest.raises(BenchmarkError, match="holds an object at the top, where this format has an array"):
        load_benchmark("vqa-rad", rad_file({"qid": 1}))  # type: ignore[arg-type]
    with pytest.raises(BenchmarkError, match="holds an array at the top, where this format has an object"):
        load_benchmark("pubmedqa", write_json(tmp_path / "p.json", []))
    with pytest.raises(BenchmarkError, match="holds no items"):
        load_benchmark("pathvqa", write_json(tmp_path / "e.json", []))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (rad(1, question=None) | {"question": "   "}, "the field 'question' is empty"),
        ({k: v for k, v in rad(1).items() if k != "answer"}, "the field 'answer' is missing"),
        (rad(1, question=["a"]), "the field 'question' is an array, not text"),
        (rad(1, answer_type="MAYBE"), "the field 'answer_type' is 'MAYBE', not OPEN or CLOSED"),
        (rad(1, answer=True), "the field 'answer' is a boolean, not text"),
        (rad(1, image_name="../trainset.json"), "points outside the images folder"),
        (rad(1, image_name="/etc/passwd"), "is an absolute path"),
        (rad(1, image_name="synpic9.jpg"), "its image 'synpic9.jpg' does not exist"),
        ("just text", "it is text, not an object"),
    ],
)
def test_bad_item_is_named_or_skipped(rad_file, row, reason):
    path = rad_file([rad(0), row])
    with pytest.raises(BenchmarkError, match=r"trainset\.json: item 2\b.*" + re.escape(reason)) as raised:
        load_benchmark("vqa-rad", path)
    assert "--skip-bad" in raised.value.remedy
    loaded = load_benchmark("vqa-rad", path, skip_bad=True)
    assert [i.id for i in loaded.items] == ["0"]
    assert [(s.ref.split(" (")[0], s.reason) for s in loaded.skipped] == [("item 2", loaded.skipped[0].reason)]
    assert reason in loaded.skipped[0].reason


def test_duplicate_ids(rad_file, tmp_path):
    with pytest.raises(BenchmarkError, match=r"item 2 \(qid 1\): its id '1' is already used by item 1"):
        load_benchmark("vqa-rad", rad_file([rad(1), rad(1)]))
    row = {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "yes"}
    path = tmp_path / "p.json"
    path.write_text(f'{{"5": {json.dumps(row)}, "5": {json.dumps(row | {"final_decision": "no"})}}}')
    with pytest.raises(BenchmarkError, match="PMID '5': its id '5' is already used by PMID '5'"):
        load_benchmark("pubmedqa", path)
    loaded = load_benchmark("pubmedqa", path, skip_bad=True)
    assert [i.answer for i in loaded.items] == ["yes"] and len(loaded.skipped) == 1
    with pytest.raises(BenchmarkError, match="it has the field 'final_decision' twice"):
        path.write_text('{"5": {"QUESTION": "Q?", "CONTEXTS": [], "final_decision": "yes", "final_decision": "no"}}')
        load_benchmark("pubmedqa", path)


def test_file_over_the_size_limit(rad_file, monkeypatch):
    path = rad_file([rad(1)] * 50)
    monkeypatch.setattr(_read, "MAX_FILE_BYTES", 1024 * 1024 // 1000)
    with pytest.raises(BenchmarkError, match=r"trainset\.json is .* MB, over the 0 MB limit"):
        load_benchmark("vqa-rad", path)


def test_not_utf8(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"question": "ok"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(BenchmarkError, match=r"m\.jsonl is not UTF-8 text: byte 36 \(line 2\)"):
        load_benchmark("medqa", path)


def test_jsonl_bad_lines(tmp_path):
    good = {"id": 1, "question": "Q?", "answer": "a", "kind": "open"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(good | {"id": 2, "questoin": "typo"}),
        json.dumps(good | {"id": 3, "kind": "choice", "options": {"A": "x", "B": "y"}, "answer": "C"}),
        json.dumps(good | {"id": 4, "kind": "label", "classes": ["a"], "label": 3}),
        json.dumps(good | {"id": 5, "image": "../../etc/passwd"}),
        json.dumps(good | {"id": 6, "language": "fr"}),
        "[1, 2]",
    ]
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchmarkError, match=r"b\.jsonl: line 2: it is not valid JSON: .* at column 2"):
        load_benchmark("jsonl", path)
    loaded = load_benchmark("jsonl", path, skip_bad=True)
    assert [i.id for i in loaded.items] == ["1"]
    reasons = {s.ref: s.reason for s in loaded.skipped}
    assert list(reasons) == [f"line {n}" for n in range(2, 9)]
    assert "unknown field(s) questoin" in reasons["line 3"]
    assert "answer 'C' is not one of the options A, B" in reasons["line 4"]
    assert "label 3 is not a class index below 1" in reasons["line 5"]
    assert "points outside the images folder" in reasons["line 6"]
    assert "language 'fr'" in reasons["line 7"]
    assert "it is an array, not an object" in reasons["line 8"]


def test_medqa_answer_must_match_its_option(tmp_path):
    row = {"question": "Q?", "options": {"A": "x", "B": "y"}, "answer_idx": "B", "answer": "x"}
    with pytest.raises(BenchmarkError, match="line 1: its answer 'x' is not the text of option B"):
        load_benchmark("medqa", write_jsonl(tmp_path / "m.jsonl", [row]))
    with pytest.raises(BenchmarkError, match="answer_idx 'E' is not one of the options A, B"):
        load_benchmark("medqa", write_jsonl(tmp_path / "m.jsonl", [row | {"answer_idx": "E"}]))


def test_pmc_vqa_bad_csv(tmp_path):
    images(tmp_path / "images", "f.jpg")
    with pytest.raises(BenchmarkError, match="lacks the column.*Answer_label"):
        load_benchmark("pmc-vqa", write_pmc(tmp_path / "a.csv", [["f.jpg", "Q", "A", "A:x", "B:y", "", ""]]))
    rows = [
        ["f.jpg", "Q", "y", "A:x", "B:y", "", "", "B"],
        ["f.jpg", "Q"],
        ["f.jpg", "Q", "y", "A:x", "B:y", "", "", "D"],
    ]
    loaded = load_benchmark("pmc-vqa", write_pmc(tmp_path / "b.csv", rows, PMC_HEADER), skip_bad=True)
    assert [s.ref for s in loaded.skipped] == ["line 3", "line 4"]
    assert "it has 2 fields where the header has 8" in loaded.skipped[0].reason
    assert "answer 'D' is not one of the options A, B" in loaded.skipped[1].reason
    path = tmp_path / "c.csv"
    path.write_text(",".join(PMC_HEADER) + '\nf.jpg,"unclosed\n')
    with pytest.raises(BenchmarkError, match=r"c\.csv is not valid CSV at line \d"):
        load_benchmark("pmc-vqa", path)


def test_medmnist_bad_files(tmp_path):
    with pytest.raises(BenchmarkError, match="is not an npz archive"):
        load_benchmark("medmnist", write_json(tmp_path / "x.npz", []))
    path = tmp_path / "chestmnist.npz"
    np.savez(path, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((2, 14), np.uint8))
    with pytest.raises(BenchmarkError, match="multi-label data"):
        load_benchmark("medmnist", path)
    np.savez(path, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(BenchmarkError, match="has 2 train images but 3 labels"):
        load_benchmark("medmnist", path)
    np.savez(path, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.array([None, 1], dtype=object))
    with pytest.raises(BenchmarkError, match="train_labels .* cannot be read"):
        load_benchmark("medmnist", path)
    np.savez(path, val_images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(BenchmarkError, match="has no array val_labels"):
        load_benchmark("medmnist", path)


def test_class_folders_bad_files(tmp_path):
    images(tmp_path / "A", "ok.png")
    (tmp_path / "A" / "notes.txt").write_text("x")
    (tmp_path / "A" / "empty.jpg").write_bytes(b"")
    (tmp_path / "A" / "out.png").symlink_to(tmp_path.parent / "elsewhere.png")
    loaded = load_benchmark("class-folders", tmp_path, skip_bad=True)
    assert [i.id for i in loaded.items] == ["A/ok.png"]
    assert {s.ref: s.reason.split(" (")[0].split(",")[0] for s in loaded.skipped} == {
        "A/empty.jpg": "it is not a regular file",
        "A/notes.txt": "it is not an image file",
        "A/out.png": f"it is a link to {(tmp_path.parent / 'elsewhere.png').resolve()}",
    }


GARBAGE = [b"", b"null", b"[1, 2]", b'{"a": {}}', b"\xff\xfe\x00", b"[" * 100000, b'[{"qid": 1e999}]', b"\x00" * 10]


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_garbage_never_escapes_as_a_traceback(tmp_path, name):
    images(tmp_path / "images", "x.jpg")
    images(tmp_path / "imgs", "x.jpg")
    for n, blob in enumerate(GARBAGE):
        path = tmp_path / f"g{n}.data"
        path.write_bytes(blob)
        for skip_bad in (False, True):
            try:
                load_benchmark(name, path, skip_bad=skip_bad)
            except BenchmarkError as e:
                assert str(path) in e.problem or "folder" in e.problem


def test_split_by_group_contract():
    def item(i: int, group: str | None) -> EvalItem:
        return EvalItem(id=str(i), benchmark="t", question="Q?", answer="a", kind="open", group=group)

    items = [item(i, f"img{i % 40}") for i in range(400)] + [item(i, None) for i in range(400, 450)]
    train, dev = split_by_group(items, dev_fraction=0.25, seed=3)
    assert not {i.group for i in train if i.group} & {i.group for i in dev if i.group}
    assert len(train) + len(dev) == 450 and 0 < len(dev) < len(train)
    assert split_by_group(items, dev_fraction=0.0)[1] == () and split_by_group(items, dev_fraction=1.0)[0] == ()
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_group(items, dev_fraction=1.5)
