"""Answer extraction: hand-written replies, right, wrong, missing, garbage, huge and unicode."""

from __future__ import annotations

import time

import pytest

from neuromas.tasks import rewards

NUMBER_CASES = [
    # (reply, extracted)
    ("Answer: 17", "17"),
    ("answer: 17", "17"),
    ("ANSWER:17", "17"),
    ("3+5 = 8, 8+2 = 10, 10+7 = 17.\nAnswer: 17", "17"),
    ("Answer: 12\nWait, I was wrong.\nAnswer: 17", "17"),          # the last Answer wins
    ("The answer: 3 + 5 + 2 + 7 = 17", "17"),                        # after the last "="
    ("Answer: 17 (3+5+2+7)", "17"),                                  # first number, no "="
    ("Answer: **17**", "17"),
    ("Answer: $1,234", "1234"),
    ("Answer: 1,234,567 apples", "1234567"),
    ("Answer: -42", "-42"),
    ("Answer: −42", "-42"),                                          # U+2212 minus sign
    ("Answer: 12.0", "12"),
    ("Answer: 12.50", "12.5"),
    ("Answer: 007", "7"),
    ("Answer: -0", "0"),
    ("Answer: ４２", "42"),                                          # full-width digits
    ("Answer:\n\n  42\n", "42"),                                     # on the next line
    ("Answer: 7, from 3 and 4", "7"),                                # span without "=": first
    ("Answer: unknown\nI counted 5 apples", "5"),                    # span empty of numbers
    ("We have 3 apples and 4 pears, so 7 fruits.", "7"),             # no Answer: last number
    ("3-5", "5"),                                                    # "-" glued to 3: not a sign
    ("It is 5.", "5"),
    ("", None),
    ("Answer:", None),
    ("I don't know.", None),
    ("Answer: seventeen", None),
    ("\x00\x01\x02 ��� 🙂🙃", None),
    ("٣", None),                                         # Arabic-Indic digit: not ASCII
]


@pytest.mark.parametrize("reply, expected", NUMBER_CASES)
def test_extract_number(reply, expected):
    assert rewards.extract_number(reply) == expected


@pytest.mark.parametrize("target, expected", [
    (17, "17"), (-3, "-3"), ("1,234", "1234"), (12.0, "12"), (2.5, "2.5"), ("018", "18"),
])
def test_normalize_number(target, expected):
    assert rewards.normalize_number(target) == expected


def test_huge_numbers_are_compared_as_text_without_int_limits():
    huge = "9" * 10_000  # int() of this raises ValueError (max 4300 digits by default)
    assert rewards.extract_number(f"Answer: {huge}") == huge
    assert rewards.extract_number(f"Answer: {huge}") != "17"
    assert rewards.extract_number("Answer: " + "1," * 5000 + "5") == "1"  # not thousands


@pytest.mark.parametrize("reply", [
    "9" * 200_000,
    "Answer: " + " " * 200_000 + "x",
    "answer is" + " " * 200_000,
    "(" * 100_000 + ")" * 100_000,
    "1," * 100_000,
    "Answer:" * 50_000,
    "a" * 200_000 + "!",
    "\n" * 200_000,
])
def test_long_adversarial_texts_finish_quickly(reply):
    start = time.monotonic()
    rewards.extract_number(reply)
    rewards.extract_choice(reply, options={"A": "x", "B": "y"})
    rewards.extract_word(reply, ("yes", "no"))
    rewards.extract_text(reply)
    assert time.monotonic() - start < 2.0


OPTIONS = {"A": "Planetary density will decrease.",
           "B": "Planetary years will become longer.",
           "C": "Planetary days will become shorter.",
           "D": "Planetary gravity will become stronger."}

CHOICE_CASES = [
    ("Answer: C", "C"),
    ("Answer: (C)", "C"),
    ("answer: c", "C"),
    ("Answer: (c)", "C"),
    ("Answer: C) Planetary days will become shorter.", "C"),
    ("Answer: C. days get shorter", "C"),
    ("Answer: **C**", "C"),
    ("Answer: the correct option is (C).", "C"),
    ("Answer: option C", "C"),
    ("Answer: Planetary days will become shorter", "C"),          # the option's text
    ("Answer: B\nHmm, no.\nAnswer: D", "D"),                        # last Answer wins
    ("Answer: E", None),                                            # not one of the options
    ("Answer: I think it is (B)", "B"),                             # "I" is a word here
    ("Answer: A dog could not know", None),                         # "A" is a word here
    ("Reasoning...\nSo the answer is B.", "B"),
    ("the answer is (D)", "D"),
    ("The answer would be option A", "A"),
    ("Faster spin, shorter day.\n(C)", "C"),                        # last line alone
    ("Faster spin, shorter day.\nC.", "C"),
    ("Faster spin, so I pick (C) over the rest.", "C"),             # one distinct (X)
    ("Compare (A) with (C): (C) fits.", None),                      # two distinct: ambiguous
    ("So: planetary days will become shorter.", "C"),               # option text in last line
    ("(A) density (B) years (C) days (D) gravity", None),           # restating all options
    ("", None),
    ("Answer:", None),
    ("🙂 Answer: ⓒ", "C"),                                          # NFKC: circled c -> c
]


@pytest.mark.parametrize("reply, expected", CHOICE_CASES)
def test_extract_choice_with_options(reply, expected):
    assert rewards.extract_choice(reply, options=OPTIONS) == expected


def test_extract_choice_without_options_accepts_any_letter_but_not_text():
    assert rewards.extract_choice("Answer: (K)") == "K"
    assert rewards.extract_choice("Answer: Planetary days will become shorter") is None
    assert rewards.extract_choice("Answer: D", labels="ABC") is None


def test_extract_choice_prefers_the_longest_option_text():
    options = {"A": "earth", "B": "dearth, wind, & fire", "C": "earth, wind, & fire"}
    assert rewards.extract_choice("Answer: earth, wind, & fire", options=options) == "C"
    assert rewards.extract_choice("Answer: dearth, wind, & fire", options=options) == "B"


YES_NO = ("yes", "no")
WORD_CASES = [
    ("Answer: Yes", YES_NO, "yes"),
    ("answer: NO.", YES_NO, "no"),
    ("Answer: **No**", YES_NO, "no"),
    ("Answer: No, you end up 3 steps away.", YES_NO, "no"),
    ("Answer: Yes\nActually, let me recount.\nAnswer: No", YES_NO, "no"),
    ("We take 3 steps... so the answer is yes.", YES_NO, "yes"),
    ("No, you do not return to the start.", YES_NO, "no"),          # last line starts with it
    ("Is it yes or no? Hard to say, maybe not.", YES_NO, None),      # no clear signal
    ("Answer: Nope", YES_NO, None),
    ("No idea, sorry", YES_NO, None),                                # "no" as a word, no stop
    ("Yes!", YES_NO, "yes"),
    ("Answer: nothing", YES_NO, None),
    ("Answer: invalid", ("valid", "invalid"), "invalid"),
    ("Answer: valid", ("valid", "invalid"), "valid"),
    ("The argument is invalid.\nAnswer: invalid", ("valid", "invalid"), "invalid"),
    ("Answer: False", ("true", "false"), "false"),
    ("not ( True ) is False\nthe answer is False", ("true", "false"), "false"),
    ("", YES_NO, None),
    ("😀😀😀", YES_NO, None),
]


@pytest.mark.parametrize("reply, vocabulary, expected", WORD_CASES)
def test_extract_word(reply, vocabulary, expected):
    assert rewards.extract_word(reply, vocabulary) == expected


@pytest.mark.parametrize("text, expected", [
    ("  (B) ", "b"),
    ('"Yes."', "yes"),
    ("New   York", "new york"),
    ("'Paris'.", "paris"),
    ("“Jupiter”", "jupiter"),
    ("(a) and (b)", "(a) and (b)"),       # not one bracketed whole: kept
    ("", ""),
])
def test_normalize_text(text, expected):
    assert rewards.normalize_text(text) == expected


@pytest.mark.parametrize("reply, expected", [
    ("Answer: Paris", "paris"),
    ("The capital is...\nParis.", "paris"),
    ("Answer:   New  York.", "new york"),
    ("", None),
    ("   \n  ", None),
])
def test_extract_text(reply, expected):
    assert rewards.extract_text(reply) == expected


@pytest.mark.parametrize("bad", [None, 17, b"Answer: 3", ["Answer: 3"]])
def test_non_string_replies_give_no_answer(bad):
    assert rewards.extract_number(bad) is None
    assert rewards.extract_choice(bad) is None
    assert rewards.extract_word(bad, YES_NO) is None
    assert rewards.extract_text(bad) is None
