"""`vesalius serve` over real HTTP: a real uvicorn process on loopback, driven with httpx."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pydicom
import pytest
from dicom_factory import write_series
from http_server import TOKEN, Server, ask_streamed
from pydicom.data import get_testdata_file

CT = Path(get_testdata_file("CT_small.dcm"))
CT_NAME = str(pydicom.dcmread(CT).PatientName)  # what must never reach the study store


@pytest.fixture(scope="module")
def server(tmp_path_factory, index_cache):
    root = tmp_path_factory.mktemp("server")
    running = Server(root, index_cache, VESALIUS_API_TOKEN=TOKEN, VESALIUS_MAX_UPLOAD_MB="2")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def ct_study(http) -> str:
    response = http.post("/api/studies", files=[("files", ("scan.dcm", CT.read_bytes(), "application/dicom"))])
    assert response.status_code == 201, response.text
    return response.json()["study_id"]


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_health_and_the_published_schema(server, http):
    assert http.get("/api/health").json()["status"] == "ok"
    schema = http.get("/openapi.json").json()
    for path in ("/api/studies", "/api/threads", "/api/threads/{thread_id}/messages", "/api/studies/{study_id}"):
        assert path in schema["paths"], path
    assert "multipart/form-data" in schema["paths"]["/api/studies"]["post"]["requestBody"]["content"]
    assert http.get("/docs").status_code == 404  # Swagger UI would load from a CDN
    page = http.get("/")
    assert page.status_code == 200 and "Decision support, not a diagnosis" in page.text
    assert "http" not in "".join(line for line in page.text.splitlines() if "src=" in line or "href=" in line), (
        "the page loads something from elsewhere"
    )


def test_a_token_is_required_and_checked(server):
    with server.client(token=None) as anonymous:
        refused = anonymous.post("/api/threads", json={"study_id": "0" * 24})
        assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
        assert anonymous.get("/api/health").status_code == 200  # for load balancers
    with server.client(token="wrong-token-0123456789") as wrong:
        assert wrong.get("/api/studies/" + "0" * 24).status_code == 401


def test_an_upload_is_stored_deidentified_under_its_content(server, http, ct_study):
    assert len(ct_study) == 24
    stored = _files_under(server.store / ct_study)
    assert [p.name for p in stored] == ["00000.dcm"]
    ds = pydicom.dcmread(stored[0])
    assert str(ds.get("PatientName", "")) == "" and ds.get("PatientID", "") in ("", None)
    assert ds.PatientIdentityRemoved == "YES"
    for path in _files_under(server.store):
        assert CT_NAME.encode() not in path.read_bytes(), path
    assert _files_under(server.store / ".incoming") == []  # the raw upload is gone
    again = http.post("/api/studies", files=[("files", ("other-name.dcm", CT.read_bytes(), "application/dicom"))])
    assert again.json()["study_id"] == ct_study  # content-addressed
    summary = http.get(f"/api/studies/{ct_study}").json()["summary"]
    assert summary["study_id"] == ct_study and summary["modality"] == "CT"


def test_a_series_uploaded_as_files_or_as_a_zip_is_one_study(server, http, tmp_path):
    slices = write_series(tmp_path / "series", 4, patient_name="Roe^Richard")
    as_files = http.post("/api/studies", files=[("files", (f"s{i}.dcm", p.read_bytes())) for i, p in enumerate(slices)])
    assert as_files.status_code == 201, as_files.text
    assert as_files.json()["summary"]["frames"] == 4
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for p in slices:
            archive.write(p, f"DICOM/{p.name}")
    as_zip = http.post("/api/studies", files=[("files", ("series.zip", buffer.getvalue(), "application/zip"))])
    assert as_zip.status_code == 201 and as_zip.json()["study_id"] == as_files.json()["study_id"]
    assert not any(b"Roe^Richard" in p.read_bytes() for p in _files_under(server.store))


def test_a_conversation_over_json_and_server_sent_events(http, ct_study):
    created = http.post("/api/threads", json={"study_id": ct_study, "audience": "patient"})
    assert created.status_code == 201
    thread = created.json()["thread_id"]
    assert http.get(f"/api/threads/{thread}").json() == {
        "thread_id": thread,
        "study_id": ct_study,
        "audience": "patient",
        "turns": [],
    }
    first = http.post(f"/api/threads/{thread}/messages", json={"question": "Is there a pleural effusion?"})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["turn"] == 1 and answer["route"]["audience"] == "patient" and answer["direct_answer"]
    assert answer["study"]["study_id"] == ct_study and "doctor" in answer["answer"].lower()
    events = ask_streamed(http, thread, "What does that mean?")
    names = [name for name, _ in events]
    assert names[0] == "progress" and names[-1] == "answer" and names.count("answer") == 1
    assert {"ingest", "route", "compose"} <= {data["step"] for name, data in events if name == "progress"}
    assert events[-1][1]["turn"] == 2
    turns = http.get(f"/api/threads/{thread}").json()["turns"]
    assert [t["question"] for t in turns] == ["Is there a pleural effusion?", "What does that mean?"]
    assert http.delete(f"/api/threads/{thread}").status_code == 204
    assert http.get(f"/api/threads/{thread}").status_code == 404
    assert http.delete(f"/api/threads/{thread}").status_code == 404


def test_bad_requests_get_one_clear_line(http, ct_study):
    cases = [
        http.post("/api/threads", json={"study_id": "f" * 24}),
        http.post("/api/threads", json={"study_id": ct_study, "audience": "robot"}),
        http.post("/api/threads", content=b"{not json", headers={"Content-Type": "application/json"}),
        http.get("/api/threads/../../etc/passwd"),
        http.post("/api/threads/nothere/messages", json={"question": "hello"}),
        http.get(f"/api/studies/{ct_study}/images/5"),
        http.get(f"/api/studies/{ct_study}/images/0", params={"window": "purple"}),
        http.get(f"/api/studies/{ct_study}/heatmaps/..%2f..%2fthreads.sqlite"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code)
        body = response.json()
        assert set(body) == {"error", "hint"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    long = http.post("/api/threads", json={"study_id": ct_study, "audience": "clinician"}).json()["thread_id"]
    too_long = http.post(f"/api/threads/{long}/messages", json={"question": "x" * 4001})
    assert too_long.status_code == 422
    huge = http.post(f"/api/threads/{long}/messages", content=b"{" + b" " * 100_000 + b"}")
    assert huge.status_code == 413


def test_images_render_through_a_window(http, ct_study):
    lung = http.get(f"/api/studies/{ct_study}/images/0", params={"window": "lung"})
    bone = http.get(f"/api/studies/{ct_study}/images/0", params={"window": "400,1800"})
    assert lung.headers["content-type"] == "image/png" and lung.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert lung.content != bone.content


# -- hostile uploads -------------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo("link.dcm")
            info.external_attr = (0o120777 << 16) | 0x10  # a symbolic link, as zip tools record one
            archive.writestr(info, symlink)
    return buffer.getvalue()


def test_hostile_uploads_are_refused_and_write_nothing_outside_the_store(server, http, tmp_path):
    before = set(_files_under(server.store))
    outside = server.root / "data"
    hostile = {
        "traversal zip of text": _zip({"../../../outside.dcm": b"not dicom", "../../etc/passwd": b"root:x:0:0"}),
        "zip bomb": _zip({"zeros.dcm": b"\0" * 300_000_000}),
        "symlink in a zip": _zip({}, symlink="/etc/passwd"),
        "20000x20000 png": _png_header_only(20000, 20000),
        "not an image": b"hello, this is a text file\n" * 100,
        "empty": b"",
    }
    for what, data in hostile.items():
        started = time.monotonic()
        response = http.post("/api/studies", files=[("files", ("../../evil.dcm", data, "application/octet-stream"))])
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        assert set(response.json()) == {"error", "hint"}, what
        assert time.monotonic() - started < 60, what
    # A DICOM inside a zip under a climbing name is stored under a name of the store's making.
    climbing = http.post("/api/studies", files=[("files", ("x.zip", _zip({"../../up.dcm": CT.read_bytes()})))])
    assert climbing.status_code == 201
    assert not list(server.root.parent.rglob("outside.dcm")) and not list(server.root.parent.rglob("up.dcm"))
    assert not list(server.root.parent.rglob("evil.dcm"))
    after = set(_files_under(server.store)) - before
    assert all(p.is_relative_to(server.store / climbing.json()["study_id"]) for p in after), after
    assert _files_under(server.store / ".incoming") == []
    assert all(p.is_relative_to(outside) or p.name == "server.log" for p in _files_under(server.root))


def test_oversized_and_malformed_requests(server, http):
    big = b"\0" * (3 * 1024**2)  # over this server's 2 MB
    declared = http.post("/api/studies", files=[("files", ("big.dcm", big))])
    assert declared.status_code == 413 and "2 MB" in declared.json()["error"]

    def chunks():  # no Content-Length: counted as it streams
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 100_000

    streamed = http.post("/api/studies", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413
    wrong_type = http.post("/api/studies", content=b"abc", headers={"Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415
    garbled = http.post(
        "/api/studies", content=b"--b\r\nnonsense", headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert garbled.status_code in (400, 422)
    assert _files_under(server.store / ".incoming") == []


def test_deleting_a_study_removes_it_and_its_threads_say_so(http, tmp_path):
    slices = write_series(tmp_path / "one", 1)
    study = http.post("/api/studies", files=[("files", ("a.dcm", slices[0].read_bytes()))]).json()["study_id"]
    thread = http.post("/api/threads", json={"study_id": study}).json()["thread_id"]
    assert http.delete(f"/api/studies/{study}").status_code == 204
    assert http.get(f"/api/studies/{study}/images/0").status_code == 404
    gone = http.post(f"/api/threads/{thread}/messages", json={"question": "Is this normal?"})
    assert gone.status_code == 410 and "deleted" in gone.json()["error"]
    assert http.delete(f"/api/studies/{study}").status_code == 404


def test_rate_limit_and_loopback_without_a_token(tmp_path, index_cache):
    server = Server(tmp_path, index_cache, VESALIUS_RATE_LIMIT_PER_MINUTE="5")
    try:
        with server.client(token=None) as client:
            codes = [client.get("/api/studies/" + "0" * 24).status_code for _ in range(7)]
            assert codes[:5] == [404] * 5 and codes[5] == 429  # no token needed on loopback
            limited = client.get("/api/studies/" + "0" * 24)
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    finally:
        server.stop()


def test_the_server_refuses_to_listen_beyond_loopback_without_a_token(cli):
    result = cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without an API token" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plain_image_keeps_only_its_pixels(server, http, tmp_path):
    from PIL import Image, PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "Patient: Jane Roe, MRN 123456")
    source = tmp_path / "film.png"
    Image.new("L", (64, 64), 90).save(source, pnginfo=text)
    uploaded = http.post("/api/studies", files=[("files", ("film.png", source.read_bytes()))], data={"modality": "CR"})
    assert uploaded.status_code == 201, uploaded.text
    summary = uploaded.json()["summary"]
    assert summary["modality"] == "CR" and summary["modality_source"] == "user"
    folder = server.store / uploaded.json()["study_id"]
    assert sorted(p.name for p in _files_under(folder)) == ["image.png", "modality"]
    assert b"Jane Roe" not in (folder / "image.png").read_bytes()
    assert Image.open(folder / "image.png").getpixel((10, 10)) == 90
    thread = http.post("/api/threads", json={"study_id": uploaded.json()["study_id"]}).json()["thread_id"]
    answer = http.post(f"/api/threads/{thread}/messages", json={"question": "Is this normal?"}).json()
    assert answer["study"]["modality"] == "CR"  # the thread kept the modality the upload gave


def test_shutdown_lets_the_answer_in_flight_finish(tmp_path, index_cache):
    import signal
    import threading

    server = Server(tmp_path, index_cache)
    with server.client(token=None) as http:
        study = http.post("/api/studies", files=[("files", ("ct.dcm", CT.read_bytes()))]).json()["study_id"]
        thread = http.post("/api/threads", json={"study_id": study}).json()["thread_id"]
        answered: list[str] = []
        started = threading.Event()

        def ask() -> None:
            with http.stream(
                "POST",
                f"/api/threads/{thread}/messages",
                json={"question": "Is there anything abnormal?"},
                headers={"Accept": "text/event-stream"},
            ) as stream:
                for line in stream.iter_lines():
                    started.set()  # the first event: the question is being answered
                    if line.startswith("event: "):
                        answered.append(line[7:])

        asking = threading.Thread(target=ask)
        asking.start()
        assert started.wait(60)
        server.process.send_signal(signal.SIGTERM)
        asking.join(120)
        assert server.process.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    server.stop()
    assert answered[-1] == "answer"  # the answer went out before the server stopped
    from vesalius.agent.config import load_settings
    from vesalius.agent.service import Vesalius

    with Vesalius(load_settings({"HOME": str(tmp_path / "home"), "VESALIUS_DATA_DIR": str(tmp_path / "data")})) as v:
        assert [t.turn for t in v.history(thread)] == [1]  # and it was stored whole


def test_a_hostile_modality_field_is_refused(http):
    png = io.BytesIO()
    from PIL import Image

    Image.new("L", (32, 32), 50).save(png, format="PNG")
    for modality in (b"ZZ-NOT-A-CODE", b"\xff\xfe\x00bad", b"CR" * 200):
        refused = http.post(
            "/api/studies", files=[("files", ("x.png", png.getvalue()))], data={"modality": modality.decode("latin-1")}
        )
        assert 400 <= refused.status_code < 500, (modality, refused.status_code, refused.text)
        assert set(refused.json()) == {"error", "hint"}


def test_the_same_study_uploaded_twice_at_once_is_one_study(server, http, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    slices = write_series(tmp_path / "twice", 3, patient_name="Twice^Terry")
    files = [("files", (f"{i}.dcm", p.read_bytes())) for i, p in enumerate(slices)]
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: http.post("/api/studies", files=files), range(2)))
    assert [r.status_code for r in replies] == [201, 201], [r.text for r in replies]
    (study,) = {r.json()["study_id"] for r in replies}
    assert sorted(p.name for p in (server.store / study).iterdir()) == [
        "00000.dcm",
        "00001.dcm",
        "00002.dcm",
        "heatmaps",
    ]
    assert _files_under(server.store / ".incoming") == []


def test_a_second_study_in_a_thread_is_compared_with_the_first(http, ct_study, tmp_path):
    slices = write_series(tmp_path / "two", 1)
    second = http.post("/api/studies", files=[("files", ("b.dcm", slices[0].read_bytes()))]).json()["study_id"]
    thread = http.post("/api/threads", json={"study_id": ct_study}).json()["thread_id"]
    assert http.post(f"/api/threads/{thread}/messages", json={"question": "Is this normal?"}).status_code == 200
    compared = http.post(f"/api/threads/{thread}/messages", json={"question": "What changed?", "study_id": second})
    assert compared.status_code == 200, compared.text
    answer = compared.json()
    assert answer["study"]["study_id"] == second and answer["comparison"]["prior_from"] == "measured again"
    assert answer["direct_answer"].startswith("Compared with the prior study")
    missing = http.post(f"/api/threads/{thread}/messages", json={"question": "And now?", "study_id": "f" * 16})
    assert missing.status_code == 404 and "Upload it" in missing.json()["hint"]


def test_clinical_context_over_the_api_is_de_identified(http, ct_study):
    thread = http.post("/api/threads", json={"study_id": ct_study}).json()["thread_id"]
    body = {"question": "Is there an effusion?", "context": "Mr. John Smith, seen 12/03/2024, known cardiomegaly"}
    answer = http.post(f"/api/threads/{thread}/messages", json=body)
    assert answer.status_code == 200, answer.text
    assert "Smith" not in answer.text and "12/03/2024" not in answer.text
    assert answer.json()["context"]["text"] == "[name], seen [date], known cardiomegaly"


def test_an_oversized_or_empty_context_over_the_api_is_refused(http, ct_study):
    thread = http.post("/api/threads", json={"study_id": ct_study}).json()["thread_id"]
    for context in ("x" * 4001, "   "):
        refused = http.post(f"/api/threads/{thread}/messages", json={"question": "Is it normal?", "context": context})
        assert 400 <= refused.status_code < 500 and refused.json()["hint"], refused.text
    assert http.get(f"/api/threads/{thread}").json()["turns"] == []  # nothing stored from the refused messages


def test_a_conversation_without_a_study_and_a_report_as_context(server, http, ct_study):
    thread = http.post("/api/threads", json={"audience": "patient"}).json()["thread_id"]
    assert http.get(f"/api/threads/{thread}").json()["study_id"] is None
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "Chest X-ray"},
        "conclusion": "Small left pleural effusion. Reported by Dr. Alan Grey.",
    }
    kept = http.put(
        f"/api/threads/{thread}/context", content=json.dumps(report), headers={"Content-Type": "application/fhir+json"}
    )
    assert kept.status_code == 200, kept.text
    assert "pleural effusion" in kept.json()["text"] and "Grey" not in kept.text
    answer = http.post(f"/api/threads/{thread}/messages", json={"question": "What is a pleural effusion?"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["study"] is None and not any(t["applied"] for t in body["tools"])
    assert body["context"]["text"] == kept.json()["text"]
    assert "doctor" in body["answer"].lower()
    fhir = http.get(f"/api/threads/{thread}/export", params={"format": "fhir"})
    assert fhir.status_code == 200 and fhir.headers["content-type"].startswith("application/fhir+json")
    assert json.loads(fhir.text)["resourceType"] == "Bundle"
    # A study joins the thread later, and its findings go out as a DICOM SR citing the de-identified copy's UIDs.
    later = http.post(f"/api/threads/{thread}/messages", json={"question": "Is it normal?", "study_id": ct_study})
    assert later.status_code == 200 and later.json()["study"]["study_id"] == ct_study, later.text
    sr = http.get(f"/api/threads/{thread}/export", params={"format": "dicom-sr"})
    assert sr.status_code == 200 and sr.headers["content-type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(sr.content))
    # The study store keeps a de-identified copy; read again, it keeps its UIDs, and the report cites them.
    [copy] = [p for p in _files_under(server.store) if p.parent.name == ct_study and p.suffix == ".dcm"]
    assert ds.StudyInstanceUID == pydicom.dcmread(copy).StudyInstanceUID


def test_context_and_export_mistakes_get_one_line(http, ct_study):
    thread = http.post("/api/threads", json={"study_id": ct_study}).json()["thread_id"]
    url = f"/api/threads/{thread}/context"
    cases = [
        (http.put(url, content=b"fever", headers={"Content-Type": "image/png"}), 415),
        (http.put(url, content=b"", headers={"Content-Type": "text/plain"}), 400),
        (http.put(url, content=b'{"resourceType": "Observation"}', headers={"Content-Type": "application/json"}), 400),
        (http.put(url, content=b"\xff\xfe fever", headers={"Content-Type": "text/plain"}), 400),
        (http.put(url, content=b"x" * (17 * 2**20), headers={"Content-Type": "application/dicom"}), 413),
        (http.put("/api/threads/nothere/context", content=b"fever", headers={"Content-Type": "text/plain"}), 404),
        (http.get(f"/api/threads/{thread}/export", params={"format": "fhir"}), 409),
        (http.get(f"/api/threads/{thread}/export", params={"format": "hl7v2"}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"error", "hint"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    assert http.get(f"/api/threads/{thread}").json()["turns"] == []


def test_context_given_twice_at_once_keeps_one_whole_and_the_thread(http, ct_study):
    from concurrent.futures import ThreadPoolExecutor

    thread = http.post("/api/threads", json={"study_id": ct_study}).json()["thread_id"]
    assert http.post(f"/api/threads/{thread}/messages", json={"question": "Is it normal?"}).status_code == 200
    texts = [f"history {i}: cough for {i} days" for i in range(6)]
    url = f"/api/threads/{thread}/context"
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda t: http.put(url, content=t, headers={"Content-Type": "text/plain"}), texts))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    kept = http.post(f"/api/threads/{thread}/messages", json={"question": "And now?"}).json()["context"]["text"]
    assert kept in texts  # one of them, whole, never a mixture
    assert [t["question"] for t in http.get(f"/api/threads/{thread}").json()["turns"]] == ["Is it normal?", "And now?"]
