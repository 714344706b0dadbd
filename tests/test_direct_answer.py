"""The first sentence of every answer: the answer, its probability and what gave it; or that these tools cannot
tell and what would be needed; disagreements said, not hidden; plain words for patients."""

from vesalius.agent.direct import direct_answer
from vesalius.agent.short_answer import short_answer
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import Probability
from vesalius.vision.tools.base import ToolResult

FILM = StudyKind(kind="chest_xray_frontal", source="image_classifier", probability=0.97, reason="image gate")
BLANK = StudyKind(kind="other", source="pixel_checks", reason="a blank image")


def pneumonia(p: float) -> ToolResult:
    return ToolResult(
        tool="pneumonia_classifier",
        applied=True,
        reason="r",
        probabilities=[Probability(label="pneumonia", probability=p, threshold=0.5, above_threshold=p >= 0.5)],
    )


def vqa(label: str, p: float, threshold: float = 0.3) -> ToolResult:
    return ToolResult(
        tool="vqa_model",
        applied=True,
        reason="r",
        probabilities=[Probability(label=label, probability=p, threshold=threshold, above_threshold=p >= threshold)],
    )


def _direct(question, kind, tools, *, patient=False, explain=False, first=None, model=False):
    short = short_answer(question, kind, tools)
    return direct_answer(
        short, tools, kind, patient=patient, explain=explain, first_passage=first, model_configured=model
    )


def test_the_answer_comes_first_with_its_probability_and_source():
    text = _direct("Is there pneumonia?", FILM, [pneumonia(0.83)])
    assert text.startswith("Yes: probability of pneumonia 0.83") and text.endswith("[pneumonia_classifier].")


def test_tools_that_disagree_are_both_named():
    text = _direct("Is there pneumonia?", FILM, [pneumonia(0.83), vqa("no", 0.7)])
    assert text.startswith("Yes:") and "The tools disagree: the embedded VQA model says no (probability 0.70)" in text
    agree = _direct("Is there pneumonia?", FILM, [pneumonia(0.83), vqa("yes", 0.7)])
    assert "disagree" not in agree
    unsure = _direct("Is there pneumonia?", FILM, [pneumonia(0.83), vqa("no", 0.2)])
    assert "disagree" not in unsure  # below its threshold the VQA model gave no answer to disagree with


def test_a_patient_hears_it_in_plain_words_with_advice():
    text = _direct("Do I have pneumonia?", FILM, [pneumonia(0.83), vqa("no", 0.7)], patient=True)
    assert "about 83 in 100 chance" in text and "Another tool disagrees" in text and "doctor" in text
    assert "threshold" not in text


def test_cannot_tell_says_why_and_what_is_needed():
    refused = _direct("Is there pneumonia?", BLANK, [])
    assert refused.startswith("Cannot tell from these tools: no trained model read this image (") and "blank" in refused
    assert "a clinician reading the study, or a language model (VESALIUS_VLM_URL)" in refused
    abstained = _direct("Where is the lesion?", FILM, [vqa("left lower lobe", 0.12)], model=True)
    assert "'left lower lobe', has probability 0.12, too low to give" in abstained
    assert abstained.endswith("it needs a clinician reading the study.")
    patient = _direct("Is it bad?", FILM, [], patient=True)
    assert patient.startswith("The program cannot tell from this picture") and "doctor" in patient


def test_a_question_about_a_term_is_answered_by_its_definition():
    text = _direct(
        "What does atelectasis mean?",
        FILM,
        [],
        explain=True,
        first=("Atelectasis", "Collapse of part of a lung. It has many causes.", 1),
    )
    assert text == "Atelectasis: Collapse of part of a lung [1]."


def test_a_low_probability_answer_is_a_best_guess_not_a_verdict():
    text = _direct("Is there an effusion?", FILM, [vqa("no", 0.2, threshold=0.15)])
    assert text.startswith("Uncertain; the best guess is no:") and "more likely wrong than right" in text
    patient = _direct("Is there an effusion?", FILM, [vqa("no", 0.2, threshold=0.15)], patient=True)
    assert "best guess" in patient and "unsure" in patient and "about 20 in 100" in patient
