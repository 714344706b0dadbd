"""The Vesalius scoring scheme (the default): one normalisation (`normalize.py`), closed and open kept apart.

- closed, gold yes/no: the prediction's yes/no reading (`yes_no_reading`) must equal the gold; neither or both
  is wrong. Other closed gold: normalised exact match.
- open: correct = normalised exact match; also token F1 and token recall (bag-of-tokens, SQuAD style, so a
  repeated gold token must be repeated to count twice) and BLEU-1 with the standard brevity penalty.
- mc: the option letter read from the answer (`extract_choice`); no letter -> wrong, never a guess.
- label: normalised exact match on the label.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from vesalius.eval.scoring.normalize import normalize, tokens, yes_no_reading
from vesalius.eval.scoring.types import ItemScore, Options, check_kind, option_map

NAME = "vesalius"


def token_prf(pred: Sequence[str], gold: Sequence[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of two token lists, counting repeated tokens (multiset overlap).

    Both empty -> (1, 1, 1): an empty gold answered with nothing is a match; one empty -> zeros.
    """
    if not pred and not gold:
        return 1.0, 1.0, 1.0
    if not pred or not gold:
        return 0.0, 0.0, 0.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    p, r = common / len(pred), common / len(gold)
    return p, r, 2 * p * r / (p + r)


def bleu1(pred: Sequence[str], gold: Sequence[str]) -> float:
    """Sentence BLEU-1 against one reference (Papineni et al. 2002): clipped unigram precision times the brevity
    penalty BP = 1 if c > r else exp(1 - r / c); an empty candidate scores 0. No smoothing."""
    c, r = len(pred), len(gold)
    if c == 0:
        return 0.0
    clipped = sum((Counter(pred) & Counter(gold)).values())
    if clipped == 0:
        return 0.0
    bp = 1.0 if c > r else math.exp(1.0 - r / c)
    return bp * clipped / c


def open_metrics(prediction: str, gold: str) -> dict[str, float]:
    pt, gt = tokens(prediction), tokens(gold)
    p, r, f = token_prf(pt, gt)
    return {
        "exact_match": float(pt == gt),
        "token_f1": f,
        "token_recall": r,
        "token_precision": p,
        "bleu1": bleu1(pt, gt),
    }


# Patterns tried in order on the raw answer; letters must be among the options. Why each exists:
_WHOLE = re.compile(r"^\s*[\(\[]?([A-Za-z])[\)\]]?\s*[.:)]?\s*$")  # "B", "(B)", "B.", "b"
# "answer: B", "The answer is (B)", "correct option is B." -- the last such statement wins (a final answer after
# reasoning). The letter must stand alone: "answer is Bronchiectasis" has no letter.
_STATED = re.compile(
    r"\b(?:answer|option|choice)\s*(?:is|:|=|-)?\s*(?:option\s+|choice\s+)?[:\s]*[\(\[]?([A-Za-z])[\)\]]?(?=$|[\s.,:;)!])",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^\s*[\(\[]?([A-Z])[\)\].:]\s+\S")  # "B. Pneumonia", "(B) Pneumonia", "B) ..." (upper only)


def extract_choice(answer: str, options: Options | None) -> str | None:
    """The option letter an answer chooses, or None when it cannot be read (scored wrong, never guessed).

    Accepted, in this order: the whole answer is a letter ("B", "(B)", "B."); a stated letter ("answer: B",
    "The answer is B", the last one if several); a leading upper-case letter with a separator ("B. text");
    the whole answer equal, after normalisation, to exactly one option's text."""
    opts = option_map(options)
    letters = set(opts) or {chr(c) for c in range(ord("A"), ord("Z") + 1)}
    m = _WHOLE.match(answer)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    # A lower-case stated letter followed by a word is the article "a", not option A ("the answer is a mass").
    stated = [
        m.group(1).upper()
        for m in _STATED.finditer(answer)
        if m.group(1).upper() in letters and not (m.group(1).islower() and re.match(r"\s+\w", answer[m.end() :]))
    ]
    if stated:
        return stated[-1]
    m = _LEADING.match(answer)
    if m and m.group(1) in letters:
        return m.group(1)
    norm = normalize(answer)
    matches = [k for k, v in opts.items() if norm and normalize(v) == norm]
    if len(matches) == 1:
        return matches[0]
    return None


def _gold_letter(gold: str, options: Options | None) -> str | None:
    opts = option_map(options)
    g = gold.strip()
    if g.upper() in opts or (not opts and len(g) == 1 and g.isalpha()):
        return g.upper()
    norm = normalize(g)
    matches = [k for k, v in opts.items() if normalize(v) == norm]
    return matches[0] if len(matches) == 1 else None


def score(kind: str, prediction: str, gold: str, options: Options | None = None) -> ItemScore:
    """Score one answer under the Vesalius scheme (rules in the module doc string)."""
    check_kind(kind)
    prediction, gold = str(prediction), str(gold)
    if kind == "closed":
        gold_yn = yes_no_reading(gold) if normalize(gold) in ("yes", "no") else None
        if gold_yn is not None:
            read = yes_no_reading(prediction)
            ok = read == gold_yn
            return ItemScore("closed", ok, {"accuracy": float(ok)}, read)
        ok = normalize(prediction) == normalize(gold)
        return ItemScore("closed", ok, {"accuracy": float(ok)}, normalize(prediction))
    if kind == "open":
        m = open_metrics(prediction, gold)
        return ItemScore("open", bool(m["exact_match"]), m, normalize(prediction))
    if kind == "mc":
        letter = extract_choice(prediction, options)
        want = _gold_letter(gold, options)
        ok = letter is not None and letter == want
        return ItemScore("mc", ok, {"accuracy": float(ok), "parsed": float(letter is not None)}, letter)
    ok = normalize(prediction) == normalize(gold)
    return ItemScore("label", ok, {"accuracy": float(ok)}, normalize(prediction))
