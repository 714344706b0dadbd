"""Scoring schemes: the Vesalius default, and the MedEvalKit / MultiMedEval reproductions with their defects.

Harness sources read for these cases:
- MedEvalKit: github.com/alibaba-damo-academy/MedEvalKit `utils/utils.py` (parse_response, judge_judgement,
  judge_open_end_vqa, calculate_f1, judge_multi_choice), `utils/VQA_RAD/VQA_RAD.py` (commit 564d2791),
  `utils/SLAKE/SLAKE.py` (commit 9b12e3b3). The repository ships no tests or README examples for its scorers, so
  the MedEvalKit cases below follow its code line by line.
- MultiMedEval: github.com/corentin-ryr/MultiMedEval `multimedeval/utils.py` (clean_str),
  `multimedeval/task_families.py` (VQA.evaluate), `multimedeval/qa.py` (MedQA.get_predicted_answer),
  `tests/test_vqa_preprocessing.py` (commit 21b6714b) for the published preprocessing examples.
"""

from __future__ import annotations

import math

import pytest

from vesalius.eval.scoring import SCHEMES, ItemScore, get_scorer, medevalkit, multimedeval, summarise
from vesalius.eval.scoring import vesalius as ves
from vesalius.eval.scoring.normalize import normalize, tokens, yes_no_reading
from vesalius.eval.scoring.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap

OPTIONS = {"A": "pneumonia", "B": "pleural effusion", "C": "normal"}


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is Two.", "answer is 2"),
        ("Left lung (upper lobe)", "left lung"),
        ("X-ray!", "x ray"),
        ("1.5 cm", "1.5 cm"),
        ("1,000 cells", "1000 cells"),
        ("  An   ENLARGED   heart ", "enlarged heart"),
        ("ｔｈｅ ｌｉｖｅｒ", "liver"),  # full-width letters fold under NFKC
        ("twenty", "20"),
        ("eleven nodules", "11 nodules"),
        ("肝脏", "肝 脏"),  # CJK: one token per character
        ("肝脏(左叶)", "肝 脏"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("Yes.", "yes"),
        ("TRUE", "yes"),
        ("present", "yes"),
        ("No", "no"),
        ("Absent", "no"),
        ("none", "no"),
        ("Not present.", "no"),
        ("否", "no"),
        ("是", "yes"),
        ("No, there is no effusion.", "no"),
        ("Yes, a nodule is seen.", "yes"),
        ("nodule present", None),  # whole-token reading: "nodule" is not "no", and "present" is not the whole answer
        ("The lungs are normal", None),
        ("not", None),
        ("yes and no", None),  # both -> unreadable -> wrong
        ("maybe", None),
    ],
)
def test_yes_no_reading(text: str, reading: str | None) -> None:
    assert yes_no_reading(text) == reading


def test_aliases_do_not_apply_inside_open_answers() -> None:
    assert normalize("None") == "none"
    assert ves.score("open", "negative", "negative").correct


# ---------------------------------------------------------------- Vesalius scheme


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [
        ("Yes", "yes", True),
        ("Yes, there is a mass.", "Yes", True),
        ("Nodule present", "no", False),
        ("Normal", "no", False),
        ("Absent", "No", True),
        ("yes and no", "no", False),
        ("I cannot tell", "yes", False),
        ("PA", "PA", True),
        ("The PA", "PA", True),  # articles go
        ("The PA view", "PA", False),  # exact match: "view" stays
        ("left", "Right", False),
    ],
)
def test_vesalius_closed(prediction: str, gold: str, correct: bool) -> None:
    s = ves.score("closed", prediction, gold)
    assert s.kind == "closed"
    assert s.correct is correct


def test_vesalius_closed_other_gold_is_exact_match() -> None:
    assert not ves.score("closed", "The PA view", "PA").correct
    assert ves.score("closed", "pa.", "PA").correct


def test_bleu1_hand_computed() -> None:
    # c=3, r=2, 2 clipped matches, c > r so BP = 1: 2/3.
    assert ves.bleu1(["left", "upper", "lobe"], ["left", "lobe"]) == pytest.approx(2 / 3)
    # c=1, r=3, precision 1, BP = exp(1 - 3/1) = e^-2.
    assert ves.bleu1(["lobe"], ["left", "lower", "lobe"]) == pytest.approx(math.exp(-2))
    # Clipping: "lung lung lung" against "lung": 1 match of 3, BP = 1.
    assert ves.bleu1(["lung"] * 3, ["lung"]) == pytest.approx(1 / 3)
    assert ves.bleu1([], ["lung"]) == 0.0
    assert ves.bleu1(["heart"], ["lung"]) == 0.0


def test_token_f1_hand_computed() -> None:
    m = ves.score("open", "left lung mass", "A mass in the left lung").metrics
    # pred {left, lung, mass}, gold {mass, in, left, lung}: 3 common, P = 1, R = 3/4, F1 = 6/7.
    assert m["token_precision"] == pytest.approx(1.0)
    assert m["token_recall"] == pytest.approx(0.75)
    assert m["token_f1"] == pytest.approx(6 / 7)
    assert m["exact_match"] == 0.0
    # Multiset overlap: a repeated gold token must be repeated to count twice.
    p, r, f = ves.token_prf(["2", "cm"], ["2", "2", "cm"])
    assert (p, r) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert f == pytest.approx(0.8)


def test_open_exact_match_after_normalisation() -> None:
    s = ves.score("open", "The Left Lung.", "left lung")
    assert s.correct and s.metrics["exact_match"] == 1.0 and s.metrics["bleu1"] == 1.0


def test_chinese_open_answer_scores_per_character() -> None:
    m = ves.score("open", "肝", "肝脏").metrics
    assert m["token_recall"] == pytest.approx(0.5)
    assert m["token_precision"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("b", "B"),
        ("answer: B", "B"),
        ("The answer is B", "B"),
        ("The answer is (C).", "C"),
        ("Final answer: C", "C"),
        ("The correct option is B because it fits.", "B"),
        ("B. Pleural effusion", "B"),
        ("pleural effusion", "B"),  # the option text itself
        ("Pneumonia", "A"),
        ("I think pneumonia or effusion", None),
        ("Bronchiectasis", None),
        ("the answer is a mass", None),  # the article, not option A
        ("D", None),  # not an option
        ("", None),
    ],
)
def test_mc_letter_extraction(answer: str, letter: str | None) -> None:
    assert ves.extract_choice(answer, OPTIONS) == letter


def test_mc_unparseable_is_wrong_never_a_guess() -> None:
    s = ves.score("mc", "I think pneumonia or effusion", "A", OPTIONS)
    assert not s.correct and s.parsed is None and s.metrics["parsed"] == 0.0
    assert ves.score("mc", "The answer is (B)", "B", OPTIONS).correct
    assert ves.score("mc", "B", "pleural effusion", OPTIONS).correct  # gold given as option text
    assert ves.score("mc", "B", "B", ["pneumonia", "effusion"]).correct  # options as a list


def test_label_exact_match() -> None:
    assert ves.score("label", "Pneumonia.", "pneumonia").correct
    assert not ves.score("label", "bacterial pneumonia", "pneumonia").correct


def test_unknown_kind_and_scheme_rejected() -> None:
    with pytest.raises(ValueError):
        ves.score("essay", "x", "y")
    with pytest.raises(ValueError):
        get_scorer("lmms-eval")
    assert set(SCHEMES) == {"vesalius", "medevalkit", "multimedeval"}


# ---------------------------------------------------------------- MedEvalKit reproduction


@pytest.mark.parametrize(
    ("response", "gold", "correct"),
    [
        ("no", "no", True),
        ("Yes", "yes", True),
        # Defect: substring test -- "nodule", "normal", "not", "none", "cannot", "know" all contain "no".
        ("Nodule present", "no", True),
        ("Normal", "no", True),
        ("It is not possible to say", "no", True),
        ("I don't know", "no", True),
        # ... and a correct "yes" that mentions a nodule has both substrings, so it is wrong.
        ("Yes, a nodule is present", "yes", False),
        ("Yes, abnormal", "yes", False),
        # "eyes" contains "yes".
        ("The eyes are symmetric", "yes", True),
        ("Both yes and no", "no", False),
    ],
)
def test_medevalkit_yes_no_substring_defect(response: str, gold: str, correct: bool) -> None:
    s = medevalkit.score("closed", response, gold, dataset="vqa-rad")
    assert s.kind == "closed"
    assert s.correct is correct


def test_medevalkit_parse_response_patterns() -> None:
    # utils.parse_response: the text after the last "answer:" (unstripped), \boxed{} and <answer> first.
    assert medevalkit.parse_response("Reasoning... Answer: Left lung") == " left lung"
    assert medevalkit.parse_response("so \\boxed{Yes}") == "yes"
    assert medevalkit.parse_response("<answer>No</answer>") == "no"
    assert medevalkit.extract_boxed_content("\\boxed{a{b}c} and \\boxed{d}") == "d"
    assert medevalkit.extract_boxed_content("no box") == "None"


def test_medevalkit_routes_by_gold_not_answer_type_on_vqa_rad() -> None:
    # VQA_RAD.cal_metrics: gold not yes/no -> open, even when the dataset calls the question CLOSED.
    s = medevalkit.score("closed", "Left", "left", dataset="vqa-rad")
    assert s.kind == "open" and s.correct
    # SLAKE.cal_metrics honours answer_type, and tests the raw gold case-sensitively.
    s = medevalkit.score("closed", "Yes, it is", "Yes", dataset="slake")
    assert s.kind == "closed" and not s.correct  # "Yes" is not in ["yes","no"] -> exact match path
    assert medevalkit.score("closed", "Yes, it is", "yes", dataset="slake").correct


def test_medevalkit_calculate_f1_swap() -> None:
    # pred {left, lung, mass} vs gold {left, lung}: true P = 2/3, R = 1, F1 = 0.8.
    m = medevalkit.score("open", "left lung mass", "left lung").metrics
    assert (m["true_token_precision"], m["true_token_recall"], m["true_token_f1"]) == (
        pytest.approx(2 / 3),
        pytest.approx(1.0),
        pytest.approx(0.8),
    )
    # What MedEvalKit reports: "f1" is the recall, "recall" the precision, "precision" the F1.
    assert m["token_f1"] == pytest.approx(1.0)
    assert m["token_recall"] == pytest.approx(2 / 3)
    assert m["token_precision"] == pytest.approx(0.8)
    assert medevalkit.calculate_f1("left lung mass", "left lung") == pytest.approx((0.8, 2 / 3, 1.0))


def test_medevalkit_open_exact_match_is_unstripped_after_parsing() -> None:
    assert medevalkit.score("open", "lung", "lung").correct
    s = medevalkit.score("open", "Answer: lung", "lung")
    assert not s.correct  # parses to " lung"
    assert s.metrics["token_f1"] == 1.0  # the set-based F1 splits on whitespace, so it still matches


def test_medevalkit_bleu1_keeps_the_full_stop_as_a_token() -> None:
    # utils.tokenize: "lung." -> ["lung", "."]: c=2, r=1, 1 match -> 0.5.
    assert medevalkit.bleu1("lung.", "lung") == pytest.approx(0.5)
    assert medevalkit.bleu1("lobe", "left lower lobe") == pytest.approx(math.exp(-2))


def test_medevalkit_empty_open_answer_would_crash() -> None:
    assert medevalkit.calculate_f1("", "lung") == 0  # a bare int: `precision, recall, f1 = 0` raises
    s = medevalkit.score("open", "   ", "lung")
    assert not s.correct and s.metrics["harness_error"] == 1.0


def test_medevalkit_multi_choice_guesses_when_unparseable() -> None:
    choices = ["pneumonia", "pleural effusion", "normal"]
    assert medevalkit.judge_multi_choice(choices, "b", "B")
    assert medevalkit.judge_multi_choice(choices, "b", "pleural effusion")
    # Defect: no letter and no exact option -> the most similar option (difflib) is taken as the answer.
    assert medevalkit.judge_multi_choice(choices, "a", "pneumonitis, probably")
    assert medevalkit.score("mc", "pneumonitis, probably", "a", OPTIONS).correct
    assert not ves.score("mc", "pneumonitis, probably", "A", OPTIONS).correct


# ---------------------------------------------------------------- MultiMedEval reproduction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # tests/test_vqa_preprocessing.py (MultiMedEval, commit 21b6714b) -- the cases that hold verbatim today.
        ("mri-dwi", {"mri", "dwi"}),
        ("     ", set()),
        # The same file's prose examples, adapted: that commit lemmatised ("diseases" -> "disease") and kept
        # articles; the current clean_str removes a/an/the and the WordNet lemmatiser is created but never used.
        (
            (
                "The image includes a variety of diseases related to the respiratory system. Some of these diseases"
                " are pneumonia, chronic obstructive pulmonary disease (COPD), asthma, and lung cancer."
            ),
            {"related", "copd", "image", "system", "are", "cancer", "to", "pneumonia", "variety", "diseases"}
            | {"disease", "pulmonary", "of", "obstructive", "some", "chronic", "includes", "respiratory", "these"}
            | {"lung", "asthma", "and"},
        ),
        ("are regions of the brain infarcted?", {"are", "regions", "of", "brain", "infarcted"}),
    ],
)
def test_multimedeval_preprocessing_examples(text: str, expected: set[str]) -> None:
    assert multimedeval._preprocess(multimedeval.clean_str(text)) == expected


def test_multimedeval_clean_str_rules() -> None:
    assert multimedeval.clean_str("None") == "0"  # manual_map sends "none" to "0"
    assert multimedeval.clean_str("Two") == "2"
    assert multimedeval.clean_str("dont") == "don't"
    assert multimedeval.clean_str("lung.heart") == "lungheart"  # a removed period joins words
    assert multimedeval.clean_str("1.5") == "1.5"
    # re.UNICODE (32) lands in `count`: only the first 32 periods are removed.
    assert multimedeval.clean_str("." * 40) == "." * 8


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [
        ("yes", "yes", True),
        ("No.", "no", True),
        ("not", "no", True),  # gold "no" also matches "not"
        ("not sure", "no", True),
        ("yes and no", "no", True),  # both tokens: correct whatever the gold
        ("yes and no", "yes", True),
        ("nodule present", "no", False),  # token sets, so no substring defect
        ("normal", "no", False),
    ],
)
def test_multimedeval_closed_recall_threshold(prediction: str, gold: str, correct: bool) -> None:
    s = multimedeval.score("closed", prediction, gold)
    assert s.kind == "closed"
    assert s.correct is correct


def test_multimedeval_open_recall_threshold_and_metrics() -> None:
    # gold {left, lower, lobe}; a verbose answer with all three passes (recall 1), two of three (0.67) fails.
    s = multimedeval.score("open", "The lesion is in the left lower lobe near the hilum", "left lower lobe")
    assert s.kind == "open" and s.correct and s.metrics["token_recall"] == 1.0
    assert not multimedeval.score("open", "left lobe", "left lower lobe").correct
    m = multimedeval.score("open", "left lung", "left lung").metrics
    assert m["token_f1"] == pytest.approx(1 / (1 + 5e-9))  # the +1e-8 keeps a perfect F1 below 1
    assert m["bleu1"] == 1.0
    # Closed vs open is decided by the cleaned gold: "Left" is open even if the dataset says CLOSED.
    assert multimedeval.score("closed", "left", "Left").kind == "open"


def test_multimedeval_medqa_choice_by_bleu() -> None:
    assert multimedeval.medqa_choice("pleural effusion", OPTIONS) == "B"
    assert multimedeval.medqa_choice("B", OPTIONS) == "B"
    assert multimedeval.medqa_choice("", OPTIONS) is None
    assert multimedeval.medqa_choice("bronchiectasis", OPTIONS) is None  # every BLEU-1 is 0 -> invalid
    assert multimedeval.score("mc", "pleural effusion", "B", OPTIONS).correct


# ---------------------------------------------------------------- schemes disagree on the same answers


def test_same_answers_three_numbers() -> None:
    items = [("Nodule present", "no"), ("Yes, a nodule is present", "yes"), ("yes and no", "no"), ("No", "no")]
    outcomes = {name: [scorer("closed", p, g).correct for p, g in items] for name, scorer in SCHEMES.items()}
    assert outcomes == {
        "vesalius": [False, True, False, True],
        "medevalkit": [True, False, False, True],  # substring "no" in "nodule", both substrings in the "yes" answer
        "multimedeval": [False, True, True, True],  # "yes and no" holds the gold token
    }


# ---------------------------------------------------------------- statistics


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    values = [1.0] * 70 + [0.0] * 30
    a, b = bootstrap_ci(values), bootstrap_ci(values)
    assert a == b
    assert a.estimate == pytest.approx(0.7)
    assert a.low < 0.7 < a.high
    # Normal approximation: 1.96 * sqrt(.7 * .3 / 100) ~ 0.09 each side.
    assert 0.05 < a.high - a.estimate < 0.13
    assert bootstrap_ci(values, seed=1) != a
    assert math.isnan(bootstrap_ci([]).estimate)
    assert bootstrap_ci([1.0]) == bootstrap_ci([1.0, 1.0])


def test_paired_bootstrap() -> None:
    a = [1.0] * 60 + [0.0] * 40
    same = paired_bootstrap(a, a)
    assert same.difference == 0.0 and same.p_value == 1.0 and same.low == same.high == 0.0
    better = [1.0] * 80 + [0.0] * 20
    d = paired_bootstrap(better, a)
    assert d.difference == pytest.approx(0.2)
    assert d.low > 0 and d.p_value < 0.05
    assert paired_bootstrap(better, a) == d
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_mcnemar_exact_hand_computed() -> None:
    # 8 items only A got right, 2 only B: n = 10, p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 112 / 1024.
    a = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    b = [False] * 8 + [True] * 2 + [True] * 5 + [False] * 5
    r = mcnemar_exact(a, b)
    assert (r.only_a, r.only_b) == (8, 2)
    assert r.p_value == pytest.approx(112 / 1024)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert mcnemar_exact([True] * 5, [False] * 5).p_value == pytest.approx(2 / 32)
    assert mcnemar_exact([True, False], [False, True]).p_value == 1.0  # capped at 1


def test_mcnemar_matches_scipy_binomtest() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for only_a, only_b in [(8, 2), (0, 7), (15, 9), (40, 61)]:
        a = [True] * only_a + [False] * only_b
        b = [False] * only_a + [True] * only_b
        expected = scipy_stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
        assert mcnemar_exact(a, b).p_value == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- summary


def test_summarise_shape_and_numbers() -> None:
    scores: list[ItemScore] = [
        ves.score("closed", "yes", "yes"),
        ves.score("closed", "no", "yes"),
        ves.score("open", "left lung", "left lung"),
        ves.score("open", "left lobe", "left lower lobe"),
        ves.score("mc", "B", "B", OPTIONS),
    ]
    organs = ["CHEST", "HEAD", "CHEST", "HEAD", "CHEST"]
    out = summarise(scores, {"organ": organs})
    assert out["n"] == 5
    assert out["overall"]["accuracy"] == pytest.approx(3 / 5)
    assert out["closed"] == {"n": 3, "accuracy": pytest.approx(2 / 3), "accuracy_ci": out["closed"]["accuracy_ci"]}
    assert out["open"]["n"] == 2
    assert out["open"]["exact_match"] == pytest.approx(0.5)
    # second open item: P = 1, R = 2/3, F1 = 0.8; BLEU-1 = exp(1 - 3/2).
    assert out["open"]["token_f1"] == pytest.approx((1 + 0.8) / 2)
    assert out["open"]["token_recall"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["open"]["bleu1"] == pytest.approx((1 + math.exp(-0.5)) / 2)
    lo, hi = out["overall"]["accuracy_ci"]
    assert lo <= 0.6 <= hi
    assert set(out["by"]) == {"kind", "organ"}
    assert out["by"]["organ"]["CHEST"]["n"] == 3 and out["by"]["organ"]["CHEST"]["overall"]["accuracy"] == 1.0
    assert out["by"]["kind"]["mc"]["closed"]["n"] == 1
    assert summarise(scores, {"organ": organs}) == out  # fixed seed
    with pytest.raises(ValueError):
        summarise(scores, {"organ": organs[:2]})


def test_summarise_empty_blocks_are_none() -> None:
    out = summarise([ves.score("closed", "yes", "yes")])
    assert out["open"]["n"] == 0 and out["open"]["exact_match"] is None


def test_summarise_counts_medevalkit_harness_errors() -> None:
    out = summarise([medevalkit.score("open", "", "lung")])
    assert out["open"]["harness_errors"] == 1


def test_eval_scoring_does_not_import_the_agent() -> None:
    import subprocess
    import sys

    code = "import sys, vesalius.eval.scoring; print(any(m.startswith('vesalius.agent') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tokens_used_by_every_scheme_are_strings() -> None:
    assert all(isinstance(t, str) for t in tokens("Two left-sided nodules (small)."))
