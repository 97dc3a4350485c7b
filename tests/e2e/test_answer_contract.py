"""vt-prep writes answers that vt-analyze reads back: every template, every variant, parsed right."""

import random

import pytest

from videotune.analyze.parse import parse_aqa
from videotune.core.schemas import ErrorSpan, Sample
from videotune.prep.build import aqa_answer, load_templates

CASES = [
    ("squat", []),
    ("squat", [("knees_inward", 0.5, 1.25)]),
    ("squat", [("knees_forward", 2.62, 4.58)]),
    ("squat", [("knees_inward", 0.0, 2.0), ("knees_forward", 1.0, 3.5)]),
    ("overhead_press", []),
    ("overhead_press", [("elbows", 0.0, 2.78)]),
    ("overhead_press", [("knees", 0.0, 0.89)]),
    ("overhead_press", [("elbows", 0.0, 2.78), ("knees", 0.0, 0.89), ("knees", 3.0, 4.0)]),
]


@pytest.mark.parametrize("label, errors", CASES)
@pytest.mark.parametrize("variant", ["plain", "temporal", "boolean"])
@pytest.mark.parametrize("paraphrase", range(10))
def test_every_template_parses_back(label, errors, variant, paraphrase):
    templates = load_templates()
    sample = Sample(id="s", dataset="d", media="v.mp4", media_kind="video", duration_s=5.0, fps=10.0, group="g",
                    task="aqa", label=label, errors=[ErrorSpan(name=n, start_s=a, end_s=b) for n, a, b in errors])

    class Fixed(random.Random):
        def choice(self, seq):
            return seq[paraphrase % len(seq)]

    answer = aqa_answer(sample, variant, templates, Fixed(), 10)
    parsed = parse_aqa(answer)
    assert parsed.parseable, answer
    assert parsed.exercise == label, answer
    if variant == "boolean":
        assert parsed.predicts_mistake == bool(errors), answer
        return
    assert set(parsed.errors) == {n for n, _, _ in errors}, answer
    assert parsed.says_correct == (not errors), answer
    if variant == "temporal":
        for name in {n for n, _, _ in errors}:
            expected = sorted((a, b) for n, a, b in errors if n == name)
            got = [t for span in sorted(parsed.errors[name]) for t in span]
            assert got == pytest.approx([t for span in expected for t in span]), answer
