"""Read an AQA (exercise form) answer back into structure: exercise, errors, time spans.

Answers follow the seed-002 templates and their paraphrases, e.g.

    "The subject is performing a Squat. The body parts committing errors are the following:
     knees forward and knees inward."
    "The subject is performing a OHP. He performs it correctly, without any subtle errors."
    "The subject is performing a Squat. The following body part is responsible for the error:
     knees forward from frame time 2.62s to 4.58s."
    "Yes, the subject performing the squat makes a mistake: knees inward."   (boolean variant)

The parser reads names, not sentence shapes, so that paraphrases parse the same way:

1. time spans ("from [frame time] 2.6s to 4.6s") are found first and their text is blanked,
   so that nothing inside them is mistaken for a name;
2. exercise aliases (taxonomy.EXERCISES) are found with word boundaries; an answer that names
   two different exercises ("a Squat or an OHP") commits to neither, so its exercise is None;
3. every known error name is found longest first, each match blanking its text: "knees"
   (an OHP error) is a substring of "knees forward" (a squat error), and reading the short
   name inside the long one would invent an error. Names are then kept only when they belong
   to the parsed exercise, so "knees forward" in an answer about an OHP is dropped rather
   than read as "knees";
4. each span is attached to the closest error mention before it;
5. correctness ("performs it correctly", "without any errors") and the boolean variant's
   leading "Yes"/"No" are read last.

Names are matched with flexible separators (space, hyphen or underscore) and never by
splitting on '-', because names themselves contain hyphens ("overhead-press").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from videotune.core.taxonomy import ERROR_DISPLAY, EXERCISES

_NUMBER = r"(\d+(?:\.\d+)?)"
_SECONDS = r"(?:\s*(?:seconds?|secs?|s)\b)?"
_FRAME_TIME = r"(?:(?:the\s+)?frame\s+time\s+|second\s+|time\s+)?"
# "from frame time 2.62s to 4.58s", "from 2.6 to 4.6 s", "between 0.0s and 2.78s".
_SPAN = re.compile(
    rf"\b(?:from\s+{_FRAME_TIME}{_NUMBER}{_SECONDS}\s*(?:to|until|-|–)\s*{_FRAME_TIME}{_NUMBER}{_SECONDS}"
    rf"|between\s+{_FRAME_TIME}{_NUMBER}{_SECONDS}\s+and\s+{_FRAME_TIME}{_NUMBER}{_SECONDS})",
    re.IGNORECASE,
)

# Statements that the exercise was done without error. "correct" is refused when a negation
# comes shortly before it ("not performed correctly").
_CORRECT = re.compile(
    r"\b(?:correct(?:ly)?|properly|flawless(?:ly)?|perfect(?:ly)?"
    r"|(?:without|no|free\s+of|zero)\s+(?:any\s+)?(?:\w+\s+){0,4}?(?:errors?|mistakes?|faults?))\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(?:not|never|isn't|doesn't|didn't|wasn't)\s+(?:\w+\s+){0,3}$", re.IGNORECASE)
_MISTAKE_WORD = re.compile(r"\b(?:errors?|mistakes?|faults?|wrong(?:ly)?|incorrect(?:ly)?)\b", re.IGNORECASE)
_YES = re.compile(r"^\W*yes\b", re.IGNORECASE)
_NO = re.compile(r"^\W*no\b", re.IGNORECASE)


def _name_pattern(name: str) -> str:
    """Regex for a display name: words joined by any run of spaces, hyphens or underscores."""
    words = [re.escape(w) for w in re.split(r"[\s_-]+", name.strip()) if w]
    return r"[\s_-]+".join(words)


def _compile_names(names: dict[str, list[str]], plural: bool) -> list[tuple[str, re.Pattern[str]]]:
    """(key, pattern) pairs ordered longest name first, so that longer names consume text first."""
    pairs = []
    for key, spellings in names.items():
        for spelling in spellings:
            suffix = r"s?" if plural else ""
            pairs.append((len(spelling), key, re.compile(rf"\b{_name_pattern(spelling)}{suffix}\b", re.IGNORECASE)))
    pairs.sort(key=lambda p: -p[0])
    return [(key, pattern) for _, key, pattern in pairs]


# Exercise aliases may be plural ("squats"); error names are matched as written.
_EXERCISE_PATTERNS = _compile_names(
    {key: sorted({ex.display, *ex.aliases, key}) for key, ex in EXERCISES.items()}, plural=True
)
_ERROR_PATTERNS = _compile_names({key: sorted({display, key}) for key, display in ERROR_DISPLAY.items()}, plural=False)


@dataclass(frozen=True)
class ParsedAqa:
    """What an answer says.

    exercise: an EXERCISES key, or None when no single exercise is named.
    errors: error key -> spans (start_s, end_s) in the order written; a span is kept as
        written even when it ends before it starts (metrics score such a span IoU 0).
        An error named without a time has an empty list.
    says_correct: the answer states the exercise was done without error.
    parseable: False when neither an exercise nor an error/correctness statement was found.
    says_mistake: the answer states there is a mistake (names an error, says "Yes", or
        speaks of an error without saying it was done correctly).
    """

    exercise: str | None
    errors: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    says_correct: bool = False
    parseable: bool = False
    says_mistake: bool = False

    @property
    def predicts_mistake(self) -> bool | None:
        """The yes/no reading of the answer: a mistake is present (None if unreadable).

        Named errors win over a correctness phrase, since they are the more specific claim.
        """
        if self.errors:
            return True
        if self.says_correct:
            return False
        if self.says_mistake:
            return True
        return None


def _blank(text: str, start: int, end: int) -> str:
    # Replace with spaces, not remove, so that positions of later matches stay valid.
    return text[:start] + " " * (end - start) + text[end:]


def _find_all(text: str, patterns: list[tuple[str, re.Pattern[str]]]) -> tuple[list[tuple[int, str]], str]:
    """Every (position, key) in text, each match blanking its text before shorter names run."""
    found = []
    for key, pattern in patterns:
        for match in list(pattern.finditer(text)):
            found.append((match.start(), key))
            text = _blank(text, match.start(), match.end())
    found.sort()
    return found, text


def _correctness(text: str) -> bool | None:
    """True: a statement that the exercise was done without error; False: such a statement
    negated ("not performed correctly"); None: neither."""
    negated = False
    for match in _CORRECT.finditer(text):
        word = match.group(0).lower()
        if word.startswith(("correct", "properly", "flawless", "perfect")) and _NEGATION.search(text[: match.start()]):
            negated = True
            continue
        return True
    return False if negated else None


def parse_aqa(text: str) -> ParsedAqa:
    """Parse one answer (any case, any of the template paraphrases); never raises on text."""
    work = text or ""

    spans: list[tuple[int, float, float]] = []
    for match in _SPAN.finditer(work):
        numbers = [g for g in match.groups() if g is not None]
        spans.append((match.start(), float(numbers[0]), float(numbers[1])))
    for match in list(_SPAN.finditer(work)):
        work = _blank(work, match.start(), match.end())

    exercise_hits, work = _find_all(work, _EXERCISE_PATTERNS)
    named_exercises = {key for _, key in exercise_hits}
    exercise = next(iter(named_exercises)) if len(named_exercises) == 1 else None

    error_hits, work = _find_all(work, _ERROR_PATTERNS)

    # Spans are attached before names of other exercises are dropped: a span written after
    # such a name belongs to it and is dropped with it, not handed to an earlier error.
    hit_spans: list[list[tuple[float, float]]] = [[] for _ in error_hits]
    for span_pos, start_s, end_s in spans:
        before = [i for i, (pos, _) in enumerate(error_hits) if pos < span_pos]
        if before:  # a span with no error named before it has nothing to belong to
            hit_spans[before[-1]].append((start_s, end_s))

    allowed = set(EXERCISES[exercise].errors) if exercise is not None else None
    errors: dict[str, list[tuple[float, float]]] = {}
    for (_, key), key_spans in zip(error_hits, hit_spans):
        if allowed is None or key in allowed:
            errors.setdefault(key, []).extend(key_spans)

    correctness = _correctness(work)
    says_correct = correctness is True
    says_mistake = bool(errors) or correctness is False
    if not errors and correctness is None:
        # The boolean variant's bare "Yes"/"No" decides only when nothing more specific does,
        # so "Yes, he performs it correctly" reads as correct.
        if _NO.search(work):
            says_correct = True
        elif _YES.search(work) or _MISTAKE_WORD.search(work):
            says_mistake = True

    parseable = exercise is not None or bool(errors) or says_correct or says_mistake
    return ParsedAqa(
        exercise=exercise, errors=errors, says_correct=says_correct, parseable=parseable, says_mistake=says_mistake
    )
