"""Rubrics: YAML files holding the prompt, the dimensions, the 1..5 scale, a version and the answer's JSON schema.

The shipped ones live in `rubrics/` beside this file (`holistic`, `clinical`, `proassist`);
a user passes a path to their own. Loading checks that the output schema asks for every
dimension as an integer on the scale, so a rubric cannot silently accept a score that
`core.schemas.Verdict` would refuse.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from videotune.core.io import InputError, file_sha256
from videotune.core.schemas import Prediction

RUBRIC_DIR = Path(__file__).resolve().parent / "rubrics"

# The pairwise answer has one fixed shape whatever the rubric: the rubric only words the question.
PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}, "winner": {"type": "string", "enum": ["1", "2", "tie"]}},
    "required": ["rationale", "winner"],
    "additionalProperties": False,
}

# StrictUndefined: a template naming a variable we do not provide fails at load, not with an
# empty string in every prompt.
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = 1
    max: int = 5
    labels: dict[int, str] = {}

    @model_validator(mode="after")
    def _one_to_five(self) -> Scale:
        # Verdict scores are 1..5 (core.schemas); a rubric on another scale could not be stored.
        if (self.min, self.max) != (1, 5):
            raise ValueError(f"scale must be 1..5 (verdicts store 1..5), got {self.min}..{self.max}")
        return self


class Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)


class PairwisePrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str = ""
    template: str


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    version: str
    description: str = ""
    scale: Scale = Scale()
    dimensions: list[Dimension] = Field(min_length=1)
    overall: str = Field("mean", description="'mean' of the dimensions, or the name of the dimension that is the overall score")
    system: str = ""
    template: str
    output_schema: dict[str, Any]
    pairwise: PairwisePrompt | None = None
    source: str = Field("", description="file the rubric was read from (set by load_rubric)")
    sha256: str = Field("", description="content hash of that file (set by load_rubric)")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> str:
        # `version: 1` and `version: "1"` in YAML mean the same thing to a user.
        return str(value)

    @model_validator(mode="after")
    def _consistent(self) -> Rubric:
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names repeat: {names}")
        if "rationale" in names:
            raise ValueError("'rationale' is reserved for the judge's explanation and cannot be a dimension")
        if self.overall != "mean" and self.overall not in names:
            raise ValueError(f"overall must be 'mean' or one of the dimensions {names}, got {self.overall!r}")
        try:
            jsonschema.Draft202012Validator.check_schema(self.output_schema)
        except jsonschema.SchemaError as err:
            raise ValueError(f"output_schema is not a valid JSON schema: {err.message}") from None
        props = self.output_schema.get("properties", {})
        required = set(self.output_schema.get("required", []))
        for name in names:
            spec = props.get(name)
            if spec is None or name not in required:
                raise ValueError(f"output_schema must list dimension {name!r} in properties and required")
            if spec.get("type") != "integer" or spec.get("minimum") != self.scale.min or spec.get("maximum") != self.scale.max:
                raise ValueError(
                    f"output_schema property {name!r} must be an integer with minimum {self.scale.min} "
                    f"and maximum {self.scale.max}"
                )
        for text, label in ((self.system, "system"), (self.template, "template")):
            try:
                _ENV.parse(text)
            except jinja2.TemplateSyntaxError as err:
                raise ValueError(f"{label} is not a valid jinja2 template: {err.message} (line {err.lineno})") from None
        return self

    @property
    def dimension_names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def id(self) -> str:
        """How verdicts name the rubric: name and version, so results of two versions never mix."""
        return f"{self.name}@{self.version}"

    @cached_property
    def _validator(self) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(self.output_schema)

    def _context(self, **values: Any) -> dict[str, Any]:
        return {
            "dimensions": [d.model_dump() for d in self.dimensions],
            "scale": self.scale.model_dump(),
            "rubric": {"name": self.name, "version": self.version},
            "output_schema_json": json.dumps(self.output_schema),
            **values,
        }

    def render(self, question: str, reference: str, prediction: str) -> list[dict[str, str]]:
        """The chat messages asking the judge to score one prediction."""
        ctx = self._context(question=question, reference=reference, prediction=prediction)
        return _messages(self.system, self.template, ctx)

    def render_pairwise(self, question: str, reference: str, first: str, second: str) -> list[dict[str, str]]:
        if self.pairwise is None:
            raise InputError(f"rubric {self.name!r} ({self.source}) has no 'pairwise' section")
        ctx = self._context(question=question, reference=reference, first=first, second=second)
        return _messages(self.pairwise.system, self.pairwise.template, ctx)

    def check_answer(self, text: str) -> tuple[dict[str, Any] | None, str]:
        """Parse and validate a judge's answer: (the answer, "") or (None, what is wrong with it)."""
        return check_json_answer(text, self._validator, self.dimension_names)

    def overall_of(self, scores: dict[str, int]) -> float:
        if self.overall == "mean":
            return round(sum(scores.values()) / len(scores), 4)
        return float(scores[self.overall])


def _messages(system: str, template: str, ctx: dict[str, Any]) -> list[dict[str, str]]:
    messages = []
    if system.strip():
        messages.append({"role": "system", "content": _ENV.from_string(system).render(ctx).strip()})
    messages.append({"role": "user", "content": _ENV.from_string(template).render(ctx).strip()})
    return messages


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The JSON object in a model's answer: the whole text, a ```json fence, or the first {...} in it.

    Chat models often wrap the object in a fence or a sentence even when told not to; taking
    the first complete object is what every judge harness does. Raises ValueError.
    """
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("the answer holds no complete JSON object")


def check_json_answer(
    text: str, validator: jsonschema.protocols.Validator, integer_fields: list[str]
) -> tuple[dict[str, Any] | None, str]:
    try:
        value = extract_json(text)
    except ValueError as err:
        return None, str(err)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        return None, "; ".join(
            f"{'.'.join(map(str, e.path)) or 'answer'}: {e.message}" for e in errors[:5]
        )
    for name in integer_fields:
        # JSON schema counts 4.0 as an integer and Python counts True as one; a score must be a plain int.
        if type(value[name]) is not int:
            return None, f"{name}: {value[name]!r} is not an integer"
    return value, ""


def shipped_rubrics() -> list[str]:
    return sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml"))


def load_rubric(name_or_path: str | Path) -> Rubric:
    """A shipped rubric by name (`holistic`, `clinical`, `proassist`) or a user's YAML by path."""
    text = str(name_or_path)
    path = RUBRIC_DIR / f"{text}.yaml" if text in shipped_rubrics() else Path(text)
    if not path.is_file():
        raise InputError(f"rubric {text!r}: no such file, and not one of the shipped rubrics {shipped_rubrics()}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a rubric is a YAML mapping")
    raw = {**raw, "source": str(path), "sha256": file_sha256(path)}
    try:
        return Rubric.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'rubric'}: {e['msg']}" for e in err.errors())
        raise InputError(f"{path}: {problems}") from err


def question_of(prediction: Prediction) -> str:
    """The question the predicted answer replies to: meta['question'] when the pipeline kept it, else the prompt."""
    question = prediction.meta.get("question")
    return question if isinstance(question, str) and question else prediction.prompt
