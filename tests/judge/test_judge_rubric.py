import json

import pytest

from videotune.core.io import InputError
from videotune.judge.rubric import extract_json, load_rubric, shipped_rubrics


def test_shipped_rubrics_and_their_dimensions():
    assert shipped_rubrics() == ["clinical", "holistic", "proassist"]
    assert load_rubric("holistic").dimension_names == ["accuracy", "usefulness"]
    assert load_rubric("clinical").dimension_names == [
        "clinical_accuracy", "actionability", "root_cause", "completeness", "overall",
    ]
    assert load_rubric("proassist").dimension_names == ["correctness", "promptness", "efficiency", "overall"]
    for name in shipped_rubrics():
        rubric = load_rubric(name)
        assert rubric.id == f"{name}@{rubric.version}"
        assert rubric.pairwise is not None


def test_render_puts_texts_in_the_prompt_verbatim():
    rubric = load_rubric("clinical")
    messages = rubric.render("Q? {{ x }}", "the truth {braces}", "the guess {{ prediction }}")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    # Values are substituted once: template syntax inside a prediction is left as text.
    assert "Q? {{ x }}" in user and "the truth {braces}" in user and "the guess {{ prediction }}" in user
    assert '"root_cause": <integer 1-5>' in user
    pair = rubric.render_pairwise("Q", "R", "first answer", "second answer")
    assert "first answer" in pair[1]["content"] and "second answer" in pair[1]["content"]


@pytest.mark.parametrize(
    "text, ok",
    [
        ('{"rationale": "r", "accuracy": 4, "usefulness": 5}', True),
        ('```json\n{"rationale": "r", "accuracy": 4, "usefulness": 5}\n```', True),
        ('Sure! Here it is: {"rationale": "r", "accuracy": 1, "usefulness": 2} Hope it helps.', True),
        ('{"rationale": "r", "accuracy": 7, "usefulness": 5}', False),  # off the scale
        ('{"rationale": "r", "accuracy": 0, "usefulness": 5}', False),
        ('{"rationale": "r", "accuracy": 4}', False),  # a dimension missing
        ('{"rationale": "r", "accuracy": 4.0, "usefulness": 5}', False),  # not an integer
        ('{"rationale": "r", "accuracy": true, "usefulness": 5}', False),
        ('{"rationale": "r", "accuracy": "4", "usefulness": 5}', False),
        ('{"rationale": "r", "accuracy": 4, "usefulness": 5, "bonus": 1}', False),  # outside the schema
        ('{"rationale": "r", "accuracy": 4, "usef', False),  # truncated
        ("", False),
        ("I cannot rate this.", False),
    ],
)
def test_check_answer(text, ok):
    value, problem = load_rubric("holistic").check_answer(text)
    assert (value is not None) is ok
    assert bool(problem) is not ok


def test_extract_json_prefers_the_whole_text():
    assert extract_json('{"a": {"b": 1}}') == {"a": {"b": 1}}
    with pytest.raises(ValueError):
        extract_json("[1, 2]")


def test_overall_mean_or_dimension():
    assert load_rubric("holistic").overall_of({"accuracy": 4, "usefulness": 5}) == 4.5
    assert load_rubric("clinical").overall_of(
        {"clinical_accuracy": 1, "actionability": 1, "root_cause": 1, "completeness": 1, "overall": 3}
    ) == 3.0


def _user_rubric(tmp_path, **changes):
    import yaml

    data = yaml.safe_load(open(load_rubric("holistic").source).read())
    data.update(name="mine", version=2)
    data.update(changes)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_rubric_by_path(tmp_path):
    rubric = load_rubric(_user_rubric(tmp_path))
    assert rubric.id == "mine@2" and rubric.source == str(tmp_path / "mine.yaml") and len(rubric.sha256) == 64


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"output_schema": {"type": "object", "properties": {"accuracy": {"type": "integer", "minimum": 1, "maximum": 5}},
                            "required": ["accuracy"]}}, "usefulness"),
        ({"output_schema": {"type": "object", "properties": {"accuracy": {"type": "number"},
                                                             "usefulness": {"type": "integer", "minimum": 1, "maximum": 5}},
                            "required": ["accuracy", "usefulness"]}}, "integer"),
        ({"scale": {"min": 0, "max": 10}}, "1..5"),
        ({"overall": "nonsense"}, "overall"),
        ({"template": "{% for x in %}"}, "jinja2"),
    ],
)
def test_bad_user_rubric_is_refused_with_the_reason(tmp_path, changes, message):
    with pytest.raises(InputError, match=message):
        load_rubric(_user_rubric(tmp_path, **changes))


def test_unknown_rubric():
    with pytest.raises(InputError, match="shipped rubrics"):
        load_rubric("no-such-rubric")


def test_schema_is_valid_json_for_servers():
    for name in shipped_rubrics():
        json.dumps(load_rubric(name).output_schema)
