"""The answer in a word: given only where the study's kind or a trained model answers, with its evidence."""

import pytest

from vesalius.agent.service import Vesalius
from vesalius.agent.short_answer import short_answer
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import Probability
from vesalius.vision.tools.base import ToolResult

CT = StudyKind(kind="ct", source="dicom_tags", reason="DICOM Modality is CT")
FILM = StudyKind(
    kind="chest_xray_frontal",
    source="image_classifier",
    probability=0.97,
    probabilities={"chest_xray_frontal": 0.97, "ct": 0.01, "other": 0.02},
    reason="image gate",
)
UNSURE = StudyKind(kind="uncertain", source="image_classifier", probabilities={"ct": 0.4, "mri": 0.4}, reason="?")


def pneumonia(p: float, threshold: float = 0.5) -> ToolResult:
    prob = Probability(label="pneumonia", probability=p, threshold=threshold, above_threshold=p >= threshold)
    return ToolResult(tool="pneumonia_classifier", applied=True, reason="a chest film", probabilities=[prob])


@pytest.mark.parametrize(
    ("question", "kind", "text", "probability", "source"),
    [
        ("What modality is this?", CT, "CT", None, "dicom_tags"),
        ("What type of imaging is used here?", FILM, "X-ray", 0.97, "image_gate"),
        ("Is this a CT scan?", CT, "yes", None, "dicom_tags"),
        ("Is this an MRI?", CT, "no", None, "dicom_tags"),
        ("Is this an x-ray?", FILM, "yes", 0.97, "image_gate"),
        ("Is this a CT?", FILM, "no", 0.99, "image_gate"),
        ("Is this image a CT scan?", CT, "yes", None, "dicom_tags"),
        ("Was this image taken with an MRI?", CT, "no", None, "dicom_tags"),
        ("Is this a chest x-ray?", FILM, "yes", 0.97, "image_gate"),
        ("Is this a CT scan of my chest?", CT, "yes", None, "dicom_tags"),
    ],
)
def test_the_kind_of_study_answers_modality_questions(question, kind, text, probability, source):
    s = short_answer(question, kind, [])
    assert (s.text, s.probability, s.source, s.kind) == (text, probability, source, "modality")


@pytest.mark.parametrize(
    "question",
    [
        "Is this a CT or an MRI?",  # two kinds named: not a yes/no about one
        "Is the chest x-ray normal?",  # names a modality, asks about normality
        "Is there evidence of a small bowel obstruction on this CT?",
        "Where is the lesion?",
        "What does pneumothorax mean?",
        "Describe the study",
    ],
)
def test_no_short_answer_where_nothing_here_answers(question):
    assert short_answer(question, CT, [pneumonia(0.9)]) is None


def test_an_unrecognised_study_has_no_modality_answer():
    assert short_answer("What modality is this?", UNSURE, []) is None
    assert short_answer("What modality is this?", None, []) is None


def test_a_classifier_answers_a_yes_no_question_that_names_its_finding():
    yes = short_answer("Is there pneumonia?", FILM, [pneumonia(0.83)])
    assert (yes.text, yes.probability, yes.source) == ("yes", 0.83, "pneumonia_classifier")
    no = short_answer("Does this patient have pneumonia?", FILM, [pneumonia(0.2)])
    assert (no.text, no.probability) == ("no", 0.8)
    assert "0.20 against the model's threshold 0.50" in no.basis
    assert short_answer("What is the probability of pneumonia?", FILM, [pneumonia(0.83)]) is None  # not yes/no
    not_run = ToolResult(tool="pneumonia_classifier", applied=False, reason="CT")
    assert short_answer("Is there pneumonia?", CT, [not_run]) is None
    # The VQA model's answer is never read as a classifier's finding, and counts only at its threshold.
    vqa = ToolResult(
        tool="vqa_model",
        applied=True,
        reason="r",
        probabilities=[Probability(label="yes", probability=0.7, threshold=0.5, above_threshold=True)],
    )
    got = short_answer("Is there pneumonia?", FILM, [vqa, pneumonia(0.2)])
    assert (got.source, got.text) == ("pneumonia_classifier", "no")  # the trained classifier comes first
    got = short_answer("Is there an effusion?", CT, [vqa])
    assert (got.source, got.text, got.kind, got.probability) == ("vqa_model", "yes", "vqa", 0.7)
    unsure = vqa.model_copy(
        update={"probabilities": [vqa.probabilities[0].model_copy(update={"above_threshold": False})]}
    )
    assert short_answer("Is there an effusion?", CT, [unsure]) is None
    assert "1.00" not in short_answer("Is there pneumonia?", FILM, [pneumonia(0.999)]).basis  # never a certainty


def test_the_agent_puts_the_short_answer_in_the_answer(make_settings, ct_path):
    with Vesalius(make_settings()) as v:
        assert v.ask("What modality is this?", study=ct_path).short_answer.text == "CT"
        # No classifier reads a CT for pneumonia: only the VQA model may answer, at its calibrated probability.
        s = v.ask("Is there pneumonia?", study=ct_path).short_answer
        assert s is None or (s.source == "vqa_model" and s.kind == "vqa" and s.probability >= 0.5)


def test_on_a_real_film_the_pneumonia_model_answers(make_settings, shared_data):
    films = shared_data / "kermany-cxr" / "train"
    with Vesalius(make_settings()) as v:
        for folder in ("PNEUMONIA", "NORMAL"):
            film = min((films / folder).iterdir())
            s = v.ask("Is there pneumonia?", study=film, modality="CR").short_answer
            assert s is not None and s.source == "pneumonia_classifier" and s.text in ("yes", "no")
            assert 0.5 <= s.probability <= 1


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("Short answer: Yes.\nThe lungs look clear.", "Yes"),
        ("**Short answer:** CT\n\nThe image is axial.", "CT"),
        ("Urgent: none.\n\nShort answer: left lower lobe\nMore text", "left lower lobe"),
        ("- short answer: B. femur", "B. femur"),
        ("The answer is yes.", None),
        ("Short answer:\nThe lungs are clear.", None),  # the answer must be on the line itself
        ("Short answer: " + "x" * 500, "x" * 200),  # bounded
    ],
)
def test_the_model_short_answer_is_its_own_line_bounded(text, short):
    from vesalius.agent.short_answer import from_model

    got = from_model(text, "medgemma")
    assert (got.text if got else None) == short
    if got:
        assert got.source == "medgemma" and got.kind == "model" and got.probability is None


@pytest.mark.parametrize(
    ("question", "p", "text"),
    [
        ("Has the pneumonia cleared?", 0.9, "no"),  # the finding is there: it has not cleared
        ("Has the pneumonia cleared?", 0.1, "yes"),
        ("Is the pneumonia gone?", 0.9, "no"),
        ("Is there still pneumonia?", 0.9, "yes"),
        ("Has the pneumonia improved?", 0.9, None),  # one film cannot say what changed
    ],
)
def test_a_question_about_a_finding_going_away_is_answered_the_right_way_round(question, p, text):
    short = short_answer(question, FILM, [pneumonia(p)])
    assert (short.text if short else None) == text
    if short is not None:
        # the chance that the model's reading (present or absent) is right, whichever way the question is put
        assert short.probability == pytest.approx(p if p >= 0.5 else 1 - p)
