"""MultiMedEval's VQA scoring (and its MedQA-style multiple choice), reproduced rule for rule, defects included.

Source: github.com/corentin-ryr/MultiMedEval: `multimedeval/utils.py` (clean_str, the VQA-style normaliser, and
its tables), `multimedeval/task_families.py` class VQA `evaluate` (commit 0044b1fd), `multimedeval/vqa.py`
(gold = answer.lower().strip(); yes/no golds get the prompt prefix "Answer the following question with yes or
no."), `multimedeval/qa.py` MedQA.get_predicted_answer (BLEU-1 against each option).

Rules: gold and prediction pass through clean_str and become token SETS. Closed is decided by the cleaned gold
being "yes" or "no" (not by the dataset's answer type); gold "no" also accepts "not"; closed is correct when
token recall >= 0.4. Open: token recall, correct when recall >= 0.75; F1 (with +1e-8 in the denominator) and
BLEU-1 (torchmetrics BLEUScore(n_gram=1), whitespace tokens, brevity penalty) beside it. MultiMedEval averages
F1/BLEU/recall over ALL questions; our summary reports them over open questions (docs explain).

Defects kept (effects in docs/evaluation-scoring.md): a closed answer containing both "yes" and "no" is correct
whatever the gold; "not" alone is a correct "no"; any long answer holding the gold tokens passes (recall, no
precision); "none" is mapped to "0"; `period_strip.sub("", s, re.UNICODE)` passes re.UNICODE (32) as the
replacement COUNT, so only the first 32 periods go; the look-behind `(?!<=\\d)` is a typo (a look-ahead), so a
period is removed unless a digit follows -- "5." loses it, but so does "e.g" -> "eg"; removed periods join words
("lung.heart" -> "lungheart").
"""

from __future__ import annotations

import math
import re
from collections import Counter

from vesalius.eval.scoring.types import ItemScore, Options, check_kind, option_map

NAME = "multimedeval"

# utils.py tables, verbatim.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
MANUAL_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = ("a", "an", "the")
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: a look-ahead for "<=digit", not a look-behind
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def clean_str(token: str) -> str:
    """utils.clean_str, same steps in the same order (including the count=re.UNICODE slip)."""
    token = token.lower()
    _token = token
    for p in PUNCT:
        # The test looks at the ORIGINAL lowered string, the replacement acts on the running copy.
        if (p + " " in token or " " + p in token) or (re.search(COMMA_STRIP, token) is not None):
            _token = _token.replace(p, "")
        else:
            _token = _token.replace(p, " ")
    token = PERIOD_STRIP.sub("", _token, re.UNICODE)  # sic: re.UNICODE (32) lands in `count`
    words: list[str] = []
    for word in token.lower().split():
        word = MANUAL_MAP.setdefault(word, word)
        if word not in ARTICLES:
            words.append(word)
    words = [CONTRACTIONS.get(w, w) for w in words]
    return " ".join(words).replace(",", "")


def _preprocess(text: str) -> set[str]:
    toks = set(text.split())
    toks.discard("")
    return toks


def bleu1(pred: str, target: str) -> float:
    """torchmetrics BLEUScore(n_gram=1)([pred], [[target]]): whitespace tokens, clipped unigram precision, brevity
    penalty 1 if c > r else exp(1 - r/c), 0 when nothing matches."""
    hyp, ref = pred.split(), target.split()
    clipped = sum((Counter(hyp) & Counter(ref)).values())
    if not hyp or clipped == 0:
        return 0.0
    c, r = len(hyp), len(ref)
    return (1.0 if c > r else math.exp(1 - r / c)) * clipped / c


def vqa_item(prediction: str, gold: str) -> tuple[bool, dict[str, float], set[str]]:
    """VQA.evaluate for one item: (is_closed, metrics, predicted tokens). `metrics["correct"]` applies the closed
    (recall >= 0.4, "no" also matching "not") or open (recall >= 0.75) threshold."""
    clean_correct, clean_predicted = clean_str(gold.lower().strip()), clean_str(prediction)
    pred_toks, gold_toks = _preprocess(clean_predicted), _preprocess(clean_correct)
    common = len(pred_toks & gold_toks)
    precision = common / len(pred_toks) if pred_toks else 0
    recall = common / len(gold_toks) if gold_toks else 0
    f1 = 2 * (precision * recall) / (precision + recall + 1e-8)
    metrics = {
        "token_precision": float(precision),
        "token_recall": float(recall),
        "token_f1": float(f1),
        "bleu1": bleu1(clean_predicted, clean_correct),
        # Not a MultiMedEval metric; given so the open block has the same keys under every scheme.
        "exact_match": float(clean_predicted == clean_correct),
    }
    if clean_correct in ("yes", "no"):
        closed_gold = set(gold_toks)
        if closed_gold == {"no"}:
            closed_gold.add("not")
        closed_recall = len(pred_toks & closed_gold) / len(closed_gold) if closed_gold else 0
        metrics["closed_recall"] = closed_recall
        metrics["correct"] = float(closed_recall >= 0.4)
        return True, metrics, pred_toks
    metrics["correct"] = float(recall >= 0.75)
    return False, metrics, pred_toks


def medqa_choice(prediction: str, options: Options | None) -> str | None:
    """qa.MedQA.get_predicted_answer: the option ("key value", cleaned) with the highest BLEU-1 against the cleaned
    answer, first on ties; None ("Invalid answer") when the answer is empty or every BLEU-1 is 0."""
    pred = clean_str(prediction)
    if not pred:
        return None
    opts = option_map(options)
    scores = [bleu1(pred, clean_str(f"{k} {v}")) for k, v in opts.items()]
    if not scores or max(scores) == 0:
        return None
    return list(opts)[scores.index(max(scores))]


def score(kind: str, prediction: str, gold: str, options: Options | None = None) -> ItemScore:
    """Score one answer as MultiMedEval does. For "closed"/"open" the kind asked for is ignored: the cleaned gold
    decides (yes/no -> closed). "mc": MedQA's BLEU-1 option match, gold a letter (or an option text). "label":
    clean_str equality -- MultiMedEval parses labels per dataset; this is our stand-in."""
    check_kind(kind)
    prediction, gold = str(prediction), str(gold)
    if kind == "mc":
        letter = medqa_choice(prediction, options)
        opts = option_map(options)
        want = gold.strip().upper()
        if want not in opts:
            want = next((k for k, v in opts.items() if clean_str(v) == clean_str(gold)), want)
        ok = letter is not None and letter == want
        return ItemScore("mc", ok, {"accuracy": float(ok)}, letter)
    if kind == "label":
        ok = clean_str(prediction) == clean_str(gold.lower().strip())
        return ItemScore("label", ok, {"accuracy": float(ok)}, clean_str(prediction))
    closed, metrics, pred_toks = vqa_item(prediction, gold)
    ok = bool(metrics.pop("correct"))
    if closed:
        return ItemScore("closed", ok, {"accuracy": float(ok), **metrics}, " ".join(sorted(pred_toks)))
    return ItemScore("open", ok, metrics, clean_str(prediction))
