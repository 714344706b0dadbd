"""The web page in a real browser: Playwright drives Debian's Chromium (headless) against `vesalius serve`.

Screenshots are kept in tests/artifacts/ (ignored by git); `bash scripts/screenshots.sh` copies the ones the README
shows into docs/images/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dicom_factory import write_series
from http_server import TOKEN, Server
from pydicom.data import get_testdata_file

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the machine has no network: Chromium's own connections would fail
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError("Chromium is not installed: `bash scripts/install.sh --test` installs Debian's chromium")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory, index_cache):
    running = Server(tmp_path_factory.mktemp("web"), index_cache, VESALIUS_API_TOKEN=TOKEN)
    yield running
    running.stop()


def test_upload_ask_and_see_the_answer_findings_and_heatmap(browser, web_server):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    outside: list[str] = []
    local = (web_server.url, f"blob:{web_server.url}")  # blob: URLs are images the page already fetched
    context.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    page = context.new_page()
    page.goto(web_server.url)
    assert page.get_by_text("Decision support, not a diagnosis").is_visible()

    # The server wants a token: the page asks for it when a request is refused, then goes on.
    page.set_input_files("#files", get_testdata_file("CT_small.dcm"))
    page.click("#upload-button")
    page.wait_for_selector("#token-panel:not([hidden])")
    page.fill("#token", TOKEN)
    page.keyboard.press("Enter")
    page.click("#upload-button")
    page.wait_for_selector("#viewer:not([hidden])")
    page.wait_for_function("document.getElementById('image').naturalWidth > 0")
    assert "CT" in page.inner_text("#summary")

    # Keyboard: focus the image and step; the window preset re-renders.
    before = page.get_attribute("#image", "src")
    page.select_option("#window", "lung")
    page.wait_for_function(f"document.getElementById('image').src !== {before!r}")
    assert page.inner_text("#window-label") == "lung"

    page.fill("#question", "Is there anything abnormal?")
    page.click("#ask-button")
    page.wait_for_selector(".direct", timeout=120_000)
    direct = page.inner_text(".direct")
    assert direct and page.inner_text("#messages").index(direct) < page.inner_text("#messages").index("Findings")
    assert page.inner_text("#messages").count(direct) == 1  # said once, first
    table = page.inner_text("table")
    assert "calibrated probabilities, not verdicts" in table and "vqa_model" in table
    page.wait_for_selector("#overlay:not([hidden])")
    assert page.is_checked("#overlay-on")
    page.fill("#opacity", "80")
    page.dispatch_event("#opacity", "input")
    assert page.eval_on_selector("#overlay", "e => getComputedStyle(e).opacity") == "0.8"
    page.screenshot(path=str(ARTIFACTS / "web-answer.png"), full_page=True)
    page.uncheck("#overlay-on")
    assert page.is_hidden("#overlay")

    # The patient view: a new thread, plain words and the advice to see a clinician.
    page.check("input[value=patient]")
    page.wait_for_function("document.getElementById('messages').children.length === 0")
    page.fill("#question", "What does this scan show?")
    page.click("#ask-button")
    page.wait_for_selector(".direct", timeout=120_000)
    assert "doctor" in page.inner_text("#messages").lower()
    page.screenshot(path=str(ARTIFACTS / "web-patient.png"), full_page=True)
    assert outside == [], f"the page fetched from elsewhere: {outside}"
    context.close()


def test_the_page_is_usable_from_the_keyboard_and_labelled(browser, web_server):
    page = browser.new_page()
    page.goto(web_server.url)
    unlabelled = page.eval_on_selector_all(
        "input:not([type=radio]):not([type=checkbox]), select, textarea",
        "els => els.filter(e => !e.labels || e.labels.length === 0).map(e => e.id)",
    )
    assert unlabelled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "files"  # the first thing to do is the first stop
    page.close()


def test_a_second_study_is_compared_in_the_same_conversation(browser, web_server, tmp_path):
    later = write_series(tmp_path / "later", 1)[0]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.add_init_script(f"sessionStorage.setItem('vesalius-token', {TOKEN!r})")
    page.goto(web_server.url)
    page.set_input_files("#files", get_testdata_file("CT_small.dcm"))
    page.click("#upload-button")
    page.wait_for_selector("#viewer:not([hidden])")
    page.fill("#question", "Is there anything abnormal?")
    page.click("#ask-button")
    page.wait_for_selector(".direct", timeout=120_000)
    page.set_input_files("#files", str(later))
    page.check("#compare")
    page.click("#upload-button")
    page.wait_for_function("document.getElementById('study-status').textContent.includes('compares it')")
    page.fill("#question", "What changed?")
    page.click("#ask-button")
    page.wait_for_function("document.querySelectorAll('.direct').length === 2", timeout=120_000)
    assert page.inner_text("#messages >> .direct >> nth=1").startswith("Compared with the prior study")
    assert "Compared with the prior study (measured again)" in page.inner_text("table.comparison caption")
    page.click(".claims summary")
    assert "image_quality" in page.inner_text(".claims")  # each sentence with what supports it
    page.screenshot(path=str(ARTIFACTS / "web-compare.png"), full_page=True)
    page.close()


def test_a_question_without_a_study_with_a_report_as_context_and_an_export(browser, web_server, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(web_server.url)
    page.evaluate(f"sessionStorage.setItem('vesalius-token', {TOKEN!r})")
    report = tmp_path / "prior.json"
    report.write_text(
        '{"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "Chest X-ray"}, '
        '"conclusion": "Small left pleural effusion. Reported by Dr. Alan Grey."}'
    )
    page.click("#context-panel summary")
    page.set_input_files("#context-file", str(report))
    page.click("#context-button")
    page.wait_for_function("document.getElementById('context-status').textContent.includes('de-identified')")
    kept = page.inner_text("#context-status")
    assert "Small left pleural effusion" in kept and "Grey" not in kept
    page.fill("#question", "What is a pleural effusion?")  # no study opened: a question about medicine
    page.click("#ask-button")
    page.wait_for_selector(".direct", timeout=120_000)
    assert page.inner_text(".direct").startswith("Pleural effusion")
    assert "Small left pleural effusion" in page.inner_text("#messages")
    page.wait_for_selector("#exports:not([hidden])")
    with page.expect_download() as download:
        page.click("#exports button[data-format=fhir]")
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    assert '"resourceType": "Bundle"' in saved.read_text()
    page.screenshot(path=str(ARTIFACTS / "web-context.png"), full_page=True)
    context.close()
