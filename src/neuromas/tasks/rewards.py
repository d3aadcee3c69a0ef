"""Reading the answer out of a model's message, shared by every task.

A message should end with "Answer: <x>" (each task's `answer_format` asks for it), so the LAST
"Answer:" line wins: reasoning may mention "answer" earlier, the commitment comes at the end.
Small models often ignore the format, so each kind of answer has a fallback that reads the
plain text: the last number (as GSM8K graders do), "the answer is B", a final "Yes.". The
option and yes/no fallbacks only accept an unambiguous signal: a message that restates every
option, or says "no" in passing, gets no answer rather than a lucky one, because a reward that
can be won by guessing is one an RL policy learns to game.

Every function here takes any string and returns a normalised answer or None. None of them
raise or hang: the regexes have no nested quantifiers (linear time on long texts) and numbers
are compared as digit strings, never converted with int(), so a 10,000-digit "answer" is just a
wrong answer, not a ValueError.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

_ANSWER_RE = re.compile(r"answer\s*[:：]", re.IGNORECASE)
# Markdown a model wraps answers in: **42**, `B`, $18$.
_DECORATION = str.maketrans("", "", "*`$")
_QUOTES = "\"'“”‘’«»"

# A number: optional sign (only when not glued to a word or a closing bracket, so the "-5" in
# "3-5" is the number 5), digits with optional thousands commas, optional decimal part.
_NUMBER_RE = re.compile(r"(?:(?<![\w)\]])([-+]))?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?")


def clean(text: str) -> str:
    """NFKC-normalise (full-width digits and letters, the Unicode minus) and drop NULs."""
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFKC", text).replace("\x00", "")
    return text.replace("\u2212", "-")  # NFKC keeps the minus sign U+2212


def answer_span(text: str) -> str | None:
    """The text after the last "Answer:" on its line (or the next non-empty line), or None."""
    text = clean(text)
    last = None
    for last in _ANSWER_RE.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end():]
    for line in rest.split("\n"):
        line = line.translate(_DECORATION).strip()
        if line:
            return line
    return None


def last_line(text: str) -> str | None:
    """The last non-empty line, without markdown decoration."""
    for line in reversed(clean(text).split("\n")):
        line = line.translate(_DECORATION).strip()
        if line:
            return line
    return None


def normalize_text(text: str) -> str:
    """Case-fold, collapse whitespace, strip surrounding quotes/parentheses and a final period.

    "(B)" -> "b", ' "Yes." ' -> "yes", "New   York" -> "new york".
    """
    text = " ".join(clean(text).casefold().split())
    while True:
        before = text
        text = text.strip().rstrip(".").strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1]
        elif len(text) >= 2 and text[0] == "(" and text[-1] == ")" and "(" not in text[1:-1] \
                and ")" not in text[1:-1]:
            text = text[1:-1]
        if text == before:
            return text


# ---- numbers ---------------------------------------------------------------------------------


def _canonical_number(match: re.Match) -> str:
    """'1,234' -> '1234', '-12.0' -> '-12', '0.50' -> '0.5', '007' -> '7' (as strings)."""
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    whole = whole.replace(",", "").lstrip("0") or "0"
    frac = frac.rstrip("0")
    number = f"{whole}.{frac}" if frac else whole
    return f"-{number}" if sign == "-" and number != "0" else number


def parse_number(text: str) -> str | None:
    """The canonical form of `text` if it is exactly one number (commas, $ and % allowed)."""
    text = clean(text).translate(_DECORATION).strip().rstrip(".%").strip()
    match = _NUMBER_RE.fullmatch(text)
    return _canonical_number(match) if match else None


def _numbers(text: str) -> list[str]:
    return [_canonical_number(m) for m in _NUMBER_RE.finditer(text)]


def extract_number(text: str) -> str | None:
    """The number a message answers with, as a canonical string, or None.

    In an "Answer:" line: the number after its last "=" ("Answer: 3+4 = 7"), else its first
    number ("Answer: 7 (3+4)"). Without one: the last number in the whole text.
    """
    span = answer_span(text)
    if span is not None:
        after_equals = span.rsplit("=", 1)[-1]
        found = _numbers(after_equals) or _numbers(span)
        if found:
            return found[0]
    found = _numbers(clean(text))
    return found[-1] if found else None


def normalize_number(target: object) -> str:
    """A target number (int, float or string like '1,234') in `extract_number`'s form."""
    if isinstance(target, float) and target.is_integer():
        target = int(target)
    return parse_number(str(target)) or normalize_text(str(target))


# ---- multiple choice -------------------------------------------------------------------------

_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LEADING_LETTER_RE = re.compile(r"\(?([A-Za-z])(\)|[.:,]|\s|$)")
_BRACKETED_RE = re.compile(r"\(([A-Z])\)")
_OPTION_WORD_RE = re.compile(r"(?i:option|choice)\s+\(?([A-Z])\b")
# "the answer is (B)", "answer would be option C". One `\s*` between fixed words only: two
# optional runs of spaces side by side would backtrack quadratically on a long blank run.
_ANSWER_IS_LETTER_RE = re.compile(
    r"(?i:answer)\s+(?i:is|would\s+be)\s*(?::\s*)?(?i:option\s+|choice\s+)?\(?([A-Z])(?![\w'-])")
_ALONE_RE = re.compile(r"\(?([A-Z])[).:]?")


def _leading_letter(span: str) -> str | None:
    """The option letter an answer span starts with: "B", "(B)", "B) text", "b)" or "b".

    A bare "A" or "I" followed by a lower-case word is English ("A dog", "I think"), not a
    choice; a bare lower-case letter counts only when bracketed or alone.
    """
    m = _LEADING_LETTER_RE.match(span)
    if m is None:
        return None
    letter, after = m.group(1), m.group(2)
    if letter.isupper():
        is_word = after.isspace() and span[m.end():m.end() + 1].islower() and letter in "AI"
        return None if is_word else letter
    alone = span.strip("().").strip() == letter
    return letter.upper() if after == ")" or alone else None


def _option_by_text(text: str, options: Mapping[str, str]) -> str | None:
    """The one option whose text occurs in `text` (longer texts win over their own substrings)."""
    haystack = normalize_text(text)
    hits = {}
    for label, option in options.items():
        needle = normalize_text(option)
        if needle and re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack):
            hits[label] = needle
    # "earth" inside "earth, wind & fire": keep only hits that are not part of a longer hit.
    kept = [lab for lab, n in hits.items() if not any(n != m and n in m for m in hits.values())]
    return kept[0] if len(kept) == 1 else None


def extract_choice(text: str, labels: Sequence[str] = _LETTERS,
                   options: Mapping[str, str] | None = None) -> str | None:
    """The option letter a message picks ("B"), or None.

    Only the letters of `options` count when given (else `labels`), so an "E" on a question
    with four options is no answer.

    Order: the "Answer:" span (its leading letter, a "(B)" in it, "option B", or the text of
    exactly one option); then the whole message: the last "the answer is B", a last line that
    is only a letter, a single distinct "(X)" anywhere, or one option's text in the last line.
    """
    valid = {label.upper() for label in (options or labels)}
    span = answer_span(text)
    if span is not None:
        candidates = [
            _leading_letter(span),
            next((m.group(1) for m in _BRACKETED_RE.finditer(span)), None),
            next((m.group(1) for m in _OPTION_WORD_RE.finditer(span)), None),
        ]
        for letter in candidates:
            if letter in valid:
                return letter
        if options and (label := _option_by_text(span, options)):
            return label
    text = clean(text)
    said = [m.group(1) for m in _ANSWER_IS_LETTER_RE.finditer(text)]
    if said and said[-1] in valid:
        return said[-1]
    final = last_line(text)
    alone = _ALONE_RE.fullmatch(final) if final is not None else None
    if alone and alone.group(1) in valid:
        return alone.group(1)
    bracketed = {m.group(1) for m in _BRACKETED_RE.finditer(text)} & valid
    if len(bracketed) == 1:
        return bracketed.pop()
    if options and final is not None:
        return _option_by_text(final, options)
    return None


def normalize_choice(target: object) -> str:
    """'(B)', 'b', ' B. ' -> 'B'."""
    return normalize_text(str(target)).upper()


# ---- fixed vocabularies: yes/no, true/false, valid/invalid ------------------------------------


def extract_word(text: str, vocabulary: Sequence[str]) -> str | None:
    """The vocabulary word a message answers with (case-folded), or None.

    Order: the first vocabulary word of the "Answer:" line; else the last "the answer is X";
    else a last line that starts with one and a stop ("No, you end up two steps away.").
    """
    words = sorted({w.casefold() for w in vocabulary}, key=len, reverse=True)
    alternation = "|".join(map(re.escape, words))
    word_re = re.compile(rf"(?<!\w)({alternation})(?!\w)", re.IGNORECASE)
    span = answer_span(text)
    if span is not None and (m := word_re.search(span)):
        return m.group(1).casefold()
    said_re = re.compile(
        rf"answer\s+(?:is|would\s+be)\s*(?::\s*)?[\"'(]?({alternation})(?!\w)", re.I)
    said = [m.group(1) for m in said_re.finditer(clean(text))]
    if said:
        return said[-1].casefold()
    # A last line that opens with the word and a stop: "No." or "No, you end up...", not "no idea".
    final = last_line(text)
    opening = re.compile(rf"({alternation})(?:[.,!;:)]|$)", re.IGNORECASE)
    if final is not None and (m := opening.match(final.lstrip(_QUOTES + "(- "))):
        return m.group(1).casefold()
    return None


# ---- free text -------------------------------------------------------------------------------


def extract_text(text: str) -> str | None:
    """The normalised "Answer:" span, else the normalised last line, or None for empty text."""
    span = answer_span(text)
    if span is None:
        span = last_line(text)
    if span is None:
        return None
    return normalize_text(span) or None
