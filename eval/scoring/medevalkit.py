"""MedEvalKit's scoring, reproduced rule for rule, defects included.

Source: github.com/alibaba-damo-academy/MedEvalKit, `utils/utils.py` (parse_response, judge_judgement,
judge_close_end_vqa, judge_open_end_vqa, calculate_f1, bleu, judge_multi_choice), `utils/VQA_RAD/VQA_RAD.py`
(commit 564d2791) and `utils/SLAKE/SLAKE.py` (commit 9b12e3b3) `cal_metrics`; `extract_boxed_content` is from
the `mathruler` package (`mathruler.grader`). PathVQA's file was not in the index we read; it is scored here with
the VQA-RAD routing (gold yes/no -> judge_judgement, everything else open), which is what VQA_RAD.py does.

Defects kept on purpose (each is described, with its effect on a number, in docs/evaluation-scoring.md):
- yes/no by substring: `('yes' in r) ^ ('no' in r)` then `gold in r`, so "nodule", "normal", "not", "know",
  "none", "cannot" read as "no" and "eyes" as "yes".
- `calculate_f1` returns (f1, precision, recall) but the caller unpacks `precision, recall, f1`: the reported
  "f1" is the recall, "recall" is the precision, "precision" is the F1.
- `calculate_f1` returns a bare 0 for an empty prediction, and the unpacking raises TypeError: one empty open
  answer stops the whole run. Here it is scored 0 and flagged `harness_error`.
- open exact match compares the parsed text unstripped: "answer: lung" parses to " lung" and misses.
- ROUGE, BLEU-2..4 and METEOR (nltk/rouge packages) are not reproduced; the LLM judge is out of scope.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter

from vesalius.eval.scoring.types import ItemScore, Options, check_kind, option_map

NAME = "medevalkit"

_ANSWER_PATTERNS = (
    "**answer**:",
    "**answer**",
    "*answer*:",
    "**answer:**",
    "answer is",
    "answer:",
    "答案:",
    "final answer",
    "final answer is",
)


def extract_boxed_content(text: str) -> str:
    """mathruler.grader.extract_boxed_content: the content of the last \\boxed{...} (braces balanced), stripped;
    the string "None" when there is none."""
    start = text.rfind("\\boxed{")
    if start == -1:
        return "None"
    content = text[start + len("\\boxed{") :]
    depth = 0
    for i, ch in enumerate(content):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if depth == -1:
            return content[:i].strip()
    return "None"


def extract(text: str, tag: str) -> str:
    """utils.extract(text, tag, hard=True): all <tag>...</tag> contents joined by spaces, else the text itself."""
    if not text:
        return ""
    out, start = "", text.find(f"<{tag}>")
    while start != -1:
        end = text.find(f"</{tag}>", start + len(tag) + 2)
        if end == -1:
            break
        out += text[start + len(tag) + 2 : end] + " "
        start = text.find(f"<{tag}>", end + len(tag) + 3)
    return out.strip() or text


def parse_response(response: str) -> str:
    """utils.parse_response: lower-case; \\boxed{} or <answer> content; then, for each pattern in order, keep what
    follows its last occurrence. Not stripped afterwards."""
    response = response.lower()
    if "boxed" in response:
        response = extract_boxed_content(response)
    elif "<answer>" in response:
        response = extract(response, "answer")
    for pattern in _ANSWER_PATTERNS:
        if pattern in response:
            response = response.split(pattern)[-1]
    return response


def judge_judgement(answer: str, response: str) -> bool:
    """utils.judge_judgement: exactly one of the substrings 'yes'/'no' in the parsed response, and the gold in it."""
    answer = answer.lower()
    response = parse_response(response).replace("\n", "").replace(".", "")
    return (("yes" in response) ^ ("no" in response)) and answer in response


def judge_close_end_vqa(answer: str, response: str) -> bool:
    """utils.judge_close_end_vqa: parsed response, newlines and dots removed, equal to the lower-cased gold."""
    return parse_response(response).replace("\n", "").replace(".", "") == answer.lower()


def _tokenize(text: str) -> list[str]:
    """utils.tokenize, used for BLEU: lower-case, "." split off, split on single spaces (empty tokens kept)."""
    return text.lower().replace(".", " .").split(" ")


def bleu1(pred: str, target: str) -> float:
    """utils.bleu(pred, target, 1) = nltk sentence_bleu([target], pred, weights=[1]): clipped unigram precision times
    the brevity penalty; 0 when no unigram matches."""
    hyp, ref = _tokenize(pred), _tokenize(target)
    clipped = sum((Counter(hyp) & Counter(ref)).values())
    if not hyp or clipped == 0:
        return 0.0
    c, r = len(hyp), len(ref)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * clipped / c


def calculate_f1(prediction: str, ground_truth: str) -> tuple[float, float, float] | int:
    """utils.calculate_f1 verbatim in behaviour: token SETS split on whitespace; returns (f1, precision, recall),
    (0, 0, 0) without overlap, and a bare 0 when either side has no token."""
    pred, gold = set(prediction.lower().split()), set(ground_truth.lower().split())
    common = pred & gold
    if not pred or not gold:
        return 0
    precision, recall = len(common) / len(pred), len(common) / len(gold)
    if precision + recall == 0:
        return 0, 0, 0
    return 2 * precision * recall / (precision + recall), precision, recall


def judge_open_end_vqa(answer: str, response: str) -> dict[str, float]:
    """utils.judge_open_end_vqa, less ROUGE/BLEU-2..4. Keys as the summary expects; the harness's (swapped) numbers
    are what `token_f1`/`token_recall`/`token_precision` report; the true ones are under `true_*`."""
    answer = answer.lower()
    response = parse_response(response)
    out = {"exact_match": float(response == answer), "bleu1": bleu1(response, answer)}
    result = calculate_f1(response, answer)
    if isinstance(result, int):  # MedEvalKit raises TypeError here and the run dies
        out.update(token_precision=0.0, token_recall=0.0, token_f1=0.0, harness_error=1.0)
        out.update(true_token_precision=0.0, true_token_recall=0.0, true_token_f1=0.0)
        return out
    precision, recall, f1 = result  # the harness's swap: precision<-f1, recall<-precision, f1<-recall
    true_f1, true_p, true_r = result
    out.update(token_precision=float(precision), token_recall=float(recall), token_f1=float(f1))
    out.update(true_token_precision=float(true_p), true_token_recall=float(true_r), true_token_f1=float(true_f1))
    return out


def judge_multi_choice(choices: list[str], answer: str, response: str) -> bool:
    """utils.judge_multi_choice: letter or option text; when neither parses, the option most similar to the whole
    response (difflib ratio) is taken as the answer -- an unparseable answer can still score."""
    response = response.lower()
    alphas = [chr(ord("a") + i) for i in range(len(choices))]
    first, last = response.split("\n\n")[0], response.split("\n\n")[-1].split(".")[0]
    if first in alphas:
        response = first
    elif last in alphas:
        response = last
    response = parse_response(response)
    choices = [c.lower() for c in choices]
    response = response.strip().lower().replace("\n", "")
    split_response = response.split(".")[0].split(":")[-1]
    answer = answer.strip().lower()
    if split_response == answer:
        return True
    if split_response in alphas:
        return choices[ord(split_response) - ord("a")] == answer
    if split_response in choices:
        return answer in alphas and split_response == choices[ord(answer) - ord("a")]
    best, best_sim = 0, 0.0
    for i, choice in enumerate(choices):
        sim = difflib.SequenceMatcher(None, choice, response).ratio()
        if sim > best_sim:
            best, best_sim = i, sim
    return alphas[best] == answer or choices[best] == answer


def _pre_extract(response: str) -> str:
    """cal_metrics' first step: \\boxed{} content, else <answer> content (case-sensitive tag, before lower-casing)."""
    boxed = extract_boxed_content(response)
    if boxed != "None":
        return boxed
    if "<answer>" in response:
        return extract(response, "answer")
    return response


def score(
    kind: str, prediction: str, gold: str, options: Options | None = None, *, dataset: str = "vqa-rad"
) -> ItemScore:
    """Score one answer the way MedEvalKit's `cal_metrics` for `dataset` does.

    dataset "vqa-rad" / "pathvqa": the kind asked for is ignored for closed/open -- gold yes/no is closed
    (judge_judgement), anything else is open (exact match is its accuracy), as VQA_RAD.py routes.
    dataset "slake": kind "open" is open; otherwise gold exactly "yes"/"no" (case-sensitive, as SLAKE.py tests it
    before any lower-casing) goes to judge_judgement and any other closed gold to judge_close_end_vqa.
    kind "mc": judge_multi_choice (gold a letter or an option text). kind "label": judge_close_end_vqa -- MedEvalKit
    has no classification scorer, this is our stand-in.
    """
    check_kind(kind)
    response = _pre_extract(str(prediction))
    gold = str(gold)
    if kind == "mc":
        choices = list(option_map(options).values())
        ok = judge_multi_choice(choices, gold, response)
        return ItemScore("mc", ok, {"accuracy": float(ok)}, parse_response(response).strip())
    if kind == "label":
        ok = judge_close_end_vqa(gold, response)
        return ItemScore("label", ok, {"accuracy": float(ok)}, parse_response(response))
    if dataset in ("vqa-rad", "pathvqa"):
        answer, response = gold.lower().strip(), response.lower().strip()
        if answer in ("yes", "no"):
            ok = judge_judgement(answer, response)
            return ItemScore("closed", ok, {"accuracy": float(ok)}, parse_response(response))
        m = judge_open_end_vqa(answer, response)
        return ItemScore("open", bool(m["exact_match"]), m, parse_response(response))
    if dataset == "slake":
        if kind == "open":
            m = judge_open_end_vqa(gold, response)
            return ItemScore("open", bool(m["exact_match"]), m, parse_response(response))
        ok = judge_judgement(gold, response) if gold in ("yes", "no") else judge_close_end_vqa(gold, response)
        return ItemScore("closed", ok, {"accuracy": float(ok)}, parse_response(response))
    raise ValueError(f"unknown MedEvalKit dataset routing {dataset!r}; expected vqa-rad, pathvqa or slake")
