"""The exercise and form-error vocabulary shared by the tools that write and read it.

vt-prep writes answers with these names and vt-analyze parses them back, so both take
the names from here. Keys are snake_case identifiers (as stored in samples.parquet);
`display` is how the name reads inside a sentence (as the seed-002 templates spell it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    key: str
    display: str  # as written in answers: "Squat", "OHP"
    aliases: tuple[str, ...]  # other spellings accepted when parsing free text
    errors: tuple[str, ...]  # error keys this exercise can show


EXERCISES: dict[str, Exercise] = {
    "squat": Exercise(
        key="squat",
        display="Squat",
        aliases=("squat", "back squat", "backsquat"),
        errors=("knees_inward", "knees_forward"),
    ),
    "overhead_press": Exercise(
        key="overhead_press",
        display="OHP",
        aliases=("ohp", "overhead press", "overhead-press", "shoulder press"),
        errors=("elbows", "knees"),
    ),
}

ERROR_DISPLAY: dict[str, str] = {
    "knees_inward": "knees inward",
    "knees_forward": "knees forward",
    "elbows": "elbows",
    "knees": "knees",
}

# Every (exercise, error) pair, in a fixed order: metric tables and plots follow it.
ERROR_KEYS: tuple[str, ...] = tuple(e for ex in EXERCISES.values() for e in ex.errors)


def exercise_of_error(error: str) -> str:
    """The exercise an error key belongs to."""
    for ex in EXERCISES.values():
        if error in ex.errors:
            return ex.key
    raise KeyError(f"unknown error {error!r}; known: {', '.join(ERROR_KEYS)}")
