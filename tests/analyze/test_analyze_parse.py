"""Golden cases of parse_aqa: every answer shape of the seed-002 templates and the traps."""

from __future__ import annotations

import pytest

from videotune.analyze.parse import ParsedAqa, parse_aqa


@pytest.mark.parametrize(
    "text, exercise, errors",
    [
        # Two errors, plain template.
        (
            "The subject is performing a Squat. The body parts committing errors are the following: "
            "knees forward and knees inward.",
            "squat",
            {"knees_forward": [], "knees_inward": []},
        ),
        # One error, plain template.
        (
            "The subject is performing a OHP. The body part committing errors is the following: elbows.",
            "overhead_press",
            {"elbows": []},
        ),
        # Temporal, one span, "frame time".
        (
            "The subject is performing a Squat. The following body part is responsible for the error: "
            "knees forward from frame time 2.62s to 4.58s.",
            "squat",
            {"knees_forward": [(2.62, 4.58)]},
        ),
        # Temporal, two errors each with its span.
        (
            "The subject is performing a OHP. The body parts where errors are detected are as follows: "
            "elbows from frame time 0.0s to 2.78s and knees from frame time 0.0s to 0.89s.",
            "overhead_press",
            {"elbows": [(0.0, 2.78)], "knees": [(0.0, 0.89)]},
        ),
        # Spans without "frame time", without the "s", and with "seconds".
        (
            "The subject is performing an OHP. Errors: knees from 2.8 to 3.6 and elbows from 1 seconds to 2 seconds.",
            "overhead_press",
            {"knees": [(2.8, 3.6)], "elbows": [(1.0, 2.0)]},
        ),
        # The same error twice keeps both spans in order.
        (
            "The subject is performing a Squat. knees inward from 0.5s to 1.0s and knees inward from 2s to 3s.",
            "squat",
            {"knees_inward": [(0.5, 1.0), (2.0, 3.0)]},
        ),
        # Hyphenated and underscored spellings of names.
        (
            "The subject is performing an overhead-press with knees.",
            "overhead_press",
            {"knees": []},
        ),
        (
            "Exercise: BACK SQUAT. Errors: Knees-Forward, knees_inward.",
            "squat",
            {"knees_forward": [], "knees_inward": []},
        ),
    ],
)
def test_template_shapes(text, exercise, errors):
    parsed = parse_aqa(text)
    assert parsed.parseable
    assert parsed.exercise == exercise
    assert parsed.errors == errors
    assert parsed.says_mistake and not parsed.says_correct
    assert parsed.predicts_mistake is True


def test_correct_template():
    parsed = parse_aqa("The subject is performing a OHP. He performs it correctly, without any subtle errors.")
    assert parsed == ParsedAqa(exercise="overhead_press", errors={}, says_correct=True, says_mistake=False, parseable=True)
    assert parsed.predicts_mistake is False


def test_knees_is_not_read_inside_knees_forward():
    # No exercise named: every name is looked for, longest first, each consuming its text.
    parsed = parse_aqa("The errors are knees forward and knees inward.")
    assert set(parsed.errors) == {"knees_forward", "knees_inward"}
    # With both present, the short name is still found where it stands alone.
    assert set(parse_aqa("knees forward, then knees").errors) == {"knees_forward", "knees"}


def test_errors_of_another_exercise_are_dropped_with_their_spans():
    # "knees forward" is a squat error: in an OHP answer it is neither read as "knees" nor
    # does its span fall to the error named before it.
    parsed = parse_aqa(
        "The subject is performing an OHP. Errors: elbows from 0s to 1s and knees forward from 2s to 3s."
    )
    assert parsed.exercise == "overhead_press"
    assert parsed.errors == {"elbows": [(0.0, 1.0)]}
    # "knees" is not a squat error either.
    assert parse_aqa("The subject is performing a Squat. The error is: knees.").errors == {}


def test_reversed_span_is_kept_as_written():
    assert parse_aqa("Squat: knees forward from 3.0s to 1.0s.").errors == {"knees_forward": [(3.0, 1.0)]}


def test_span_before_any_error_is_not_attached():
    assert parse_aqa("Squat. From 1s to 2s the knees inward.").errors == {"knees_inward": []}


def test_boolean_variant():
    yes = parse_aqa("Yes, the subject performing the Squat makes a mistake.")
    assert (yes.exercise, yes.errors, yes.says_mistake, yes.says_correct) == ("squat", {}, True, False)
    assert yes.predicts_mistake is True
    no = parse_aqa("No, the subject performs the OHP well.")
    assert (no.exercise, no.says_correct, no.says_mistake) == ("overhead_press", True, False)
    assert no.predicts_mistake is False
    named = parse_aqa("Yes, during the squat the knees move inward: knees inward.")
    assert named.errors == {"knees_inward": []}
    # A correctness phrase is more specific than the bare "Yes".
    assert parse_aqa("Yes, he performs the squat correctly.").predicts_mistake is False


def test_negated_correctness_is_a_mistake():
    parsed = parse_aqa("The subject does not perform the squat correctly.")
    assert parsed.says_mistake and not parsed.says_correct


def test_case_and_word_boundaries():
    assert parse_aqa("THE SUBJECT IS PERFORMING A SQUAT.").exercise == "squat"
    assert parse_aqa("performing squats").exercise == "squat"
    # "squatting" is not the alias "squat" on a word boundary, and "ohpx" is not "ohp".
    assert parse_aqa("squatting ohpx").exercise is None


def test_two_exercises_commit_to_neither():
    parsed = parse_aqa("The subject is performing a Squat or a Overhead Press (OHP) exercise.")
    assert parsed.exercise is None


@pytest.mark.parametrize("text", ["", "   ", "I cannot tell.", "Человек выполняет приседание.", "深蹲，膝盖内扣。"])
def test_unparseable(text):
    parsed = parse_aqa(text)
    assert parsed == ParsedAqa(exercise=None, errors={}, says_correct=False, says_mistake=False, parseable=False)
    assert parsed.predicts_mistake is None


def test_error_only_answer_is_parseable_without_exercise():
    parsed = parse_aqa("elbows from 0.5s to 1.5s")
    assert parsed.parseable and parsed.exercise is None
    assert parsed.errors == {"elbows": [(0.5, 1.5)]}
