"""The Vesalius answer normalisation: fixed, documented, applied identically to prediction and gold.

Steps, in order (docs/evaluation-scoring.md repeats them):
1. Unicode NFKC, then `str.casefold()` (lower-case, also folds full-width and ligature forms).
2. Parentheticals dropped: "(...)" and "[...]" with their content, as lmms-eval's SLAKE scorer does, because
   gold answers carry asides ("left lung (upper lobe)") that no model can be expected to reproduce.
3. Punctuation and symbols (Unicode categories P* and S*) become spaces, except a "." or "," between two
   digits ("1.5", "1,000" keep their meaning).
4. Tokens: whitespace-separated, and each CJK character is its own token (Chinese has no spaces; SLAKE-zh).
5. The articles a / an / the are removed.
6. Number words zero..twenty and thirty..ninety (by tens) become digits; compounds ("twenty one") are not merged.
7. Whitespace collapsed: tokens joined by one space.

Yes/no aliases are NOT part of `normalize`: they apply only when reading a prediction against a yes/no gold
(`yes_no_reading`), so "none" or "negative" stay themselves in open answers.
"""

from __future__ import annotations

import re
import unicodedata

ARTICLES = frozenset({"a", "an", "the"})

_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty")  # fmt: skip
_TENS = "thirty forty fifty sixty seventy eighty ninety"
NUMBER_WORDS: dict[str, str] = {w: str(i) for i, w in enumerate(_UNITS.split())}
NUMBER_WORDS.update({w: str(10 * i) for i, w in enumerate(_TENS.split(), 3)})

# Whole-answer aliases (compared after `normalize`). Multi-word phrases are allowed because the whole answer must
# equal one; that is what keeps "not normal" or "no change in nodule" from being read as a bare yes/no.
YES_ALIASES = frozenset(
    {"yes", "y", "yeah", "yep", "true", "correct", "present", "positive", "affirmative", "是", "是 的", "对", "有"}
)
NO_ALIASES = frozenset(
    {
        "no",
        "n",
        "nope",
        "false",
        "incorrect",
        "absent",
        "negative",
        "none",
        "not present",
        "not seen",
        "not visible",
        "no evidence",
        "否",
        "不",
        "不 是",
        "没 有",
        "无",
    }
)

_PARENTHETICAL = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_DIGIT_SEP = re.compile(r"(?<=\d)[.,](?=\d)")
_SEP_MARK = "\uf8ff"  # private-use placeholder that survives the punctuation pass


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= cp <= 0x4DBF  # extension A
        or 0x20000 <= cp <= 0x2A6DF  # extension B
        or 0xF900 <= cp <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= cp <= 0x30FF  # kana
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
    )


def tokens(text: str) -> list[str]:
    """The normalised tokens of `text` (see the module doc string for the steps)."""
    s = unicodedata.normalize("NFKC", str(text)).casefold()
    prev = None
    while prev != s:  # nested parentheticals: innermost first
        prev, s = s, _PARENTHETICAL.sub(" ", s)
    # Keep decimal points / thousands separators between digits; a "," thousands separator is dropped.
    s = _DIGIT_SEP.sub(lambda m: "." if m.group(0) == "." else "", s).replace(".", ". ")
    s = re.sub(r"(?<=\d)\. (?=\d)", _SEP_MARK, s)
    out_chars: list[str] = []
    for ch in s:
        if ch == _SEP_MARK:
            out_chars.append(".")
        elif unicodedata.category(ch)[0] in "PS":
            out_chars.append(" ")
        elif _is_cjk(ch):
            out_chars.append(f" {ch} ")
        else:
            out_chars.append(ch)
    result: list[str] = []
    for tok in "".join(out_chars).split():
        if tok in ARTICLES:
            continue
        result.append(NUMBER_WORDS.get(tok, tok))
    return result


def normalize(text: str) -> str:
    """The normalised form of `text`: its tokens joined by single spaces."""
    return " ".join(tokens(text))


def yes_no_reading(text: str) -> str | None:
    """ "yes", "no", or None (neither, or both) for a prediction scored against a yes/no gold.

    Rule: if the whole normalised answer is an alias (YES_ALIASES / NO_ALIASES), that alias decides. Otherwise the
    answer is read by whole tokens "yes" and "no" only: exactly one of them present decides; none or both -> None,
    which scores as wrong. Whole tokens, never substrings: "nodule", "not", "normal", "none of" are not "no".
    """
    norm = normalize(text)
    if norm in YES_ALIASES:
        return "yes"
    if norm in NO_ALIASES:
        return "no"
    toks = set(norm.split())
    has_yes, has_no = "yes" in toks, "no" in toks
    if has_yes and not has_no:
        return "yes"
    if has_no and not has_yes:
        return "no"
    return None
