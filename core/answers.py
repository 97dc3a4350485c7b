"""Open-answer matching shared by vt-train's curriculum evaluation and vt-analyze's VQA metrics.

`normalize_answer` is the VQA evaluation's normal form: Unicode NFKC and case folding, punctuation
removed (a "." between digits kept), number words zero..ten as digits, the articles a/an/the
dropped, whitespace collapsed. `stage_key` turns a curriculum stage name into one metric-name token.
"""

from __future__ import annotations

import re
import unicodedata

UNSTAGED = "unstaged"  # the stage of questions that name none
_NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """The VQA-style normal form of an answer (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    out = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch).startswith("P"):
            between_digits = ch == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            out.append(ch if between_digits else " ")
        else:
            out.append(ch)
    words = [_NUMBERS.get(w, w) for w in "".join(out).split()]
    return " ".join(w for w in words if w not in _ARTICLES)


def stage_key(stage: object) -> str:
    """A stage name as one readable token (whitespace runs become "_"); UNSTAGED when empty or None."""
    text = str(stage).strip() if stage is not None else ""
    return re.sub(r"\s+", "_", text) or UNSTAGED
