"""The streaming DST assistant's token layout and decision heads, shared by vt-train dst and vt-infer stream.

One video is one token stream, built piece by piece (every piece tokenized on its own, so that
training sees exactly the tokens inference appends):

    <|im_start|>System: {system} Goal: {goal}. Steps: S1: ... State: {"S1": "not_started", ...}<end_of_utterance>\\n
    frame 0:  <fake_token_around_image><global-img><image> x image_seq_len<fake_token_around_image>
              [\\nUser: {text}<end_of_utterance>]                       (input, when the user spoke)
              -> decision position: the chunk's last token; the speak and DST-update heads read its hidden state
              [\\nDST: {"S1": "in_progress"}<end_of_utterance>]          (when the DST-update head fires)
              [\\nAssistant: {response}<end_of_utterance>]               (when the speak head fires)
    frame 1:  ...

The DST update names only the nodes that changed, as JSON; the tracked state is the previous
state with the update applied. The system prompt carries the state at the point where the
stream (or a training window, or a rebuilt cache) begins, so a stream that starts mid-video
knows where the task stands.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import InputError, read_json, write_json

STATES = ("not_started", "in_progress", "completed")
HEADS_WEIGHTS = "heads.safetensors"
HEADS_CONFIG = "dst_heads.json"
FORMAT_VERSION = 1

DST_PREFIX = "\nDST:"
RESPONSE_PREFIX = "\nAssistant:"
USER_PREFIX = "\nUser:"


@dataclass
class Layout:
    """Token ids of the fixed pieces, for one tokenizer."""

    frame: list[int]  # one frame's tokens; its image tokens are filled with the frame's features
    end: int  # closes a turn (the family's end-of-turn token): generation stops here
    dst_prefix: list[int]
    response_prefix: list[int]
    image_token: int


def layout(processor: Any, end_of_turn: str = "<end_of_utterance>") -> Layout:
    tok = processor.tokenizer
    ids = tok.convert_tokens_to_ids
    frame = [ids("<fake_token_around_image>"), ids("<global-img>")] + [ids("<image>")] * int(processor.image_seq_len) + [
        ids("<fake_token_around_image>")]
    return Layout(frame=frame, end=ids(end_of_turn), dst_prefix=encode(tok, DST_PREFIX),
                  response_prefix=encode(tok, RESPONSE_PREFIX), image_token=ids("<image>"))


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def state_json(state: dict[str, str]) -> str:
    return json.dumps(state, ensure_ascii=False)


def system_text(system: str, goal: str, nodes: list[tuple[str, str]], state: dict[str, str]) -> str:
    steps = " ".join(f"{node}: {name}" for node, name in nodes)
    head = f"{system} " if system else ""
    return f"<|im_start|>System: {head}Goal: {goal}. Steps: {steps} State: {state_json(state)}<end_of_utterance>\n"


def user_ids(tokenizer: Any, text: str, lay: Layout) -> list[int]:
    return encode(tokenizer, f"{USER_PREFIX} {text}") + [lay.end]


def target_ids(tokenizer: Any, text: str, lay: Layout) -> list[int]:
    """The generated part of a DST update or response: ' {text}' and the end-of-turn token."""
    return encode(tokenizer, " " + text) + [lay.end]


def parse_update(text: str, nodes: list[str]) -> dict[str, str] | None:
    """A generated DST update -> {node: state}, or None when it is not a JSON object of known nodes and states."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not value:
        return None
    if any(node not in nodes or state not in STATES for node, state in value.items()):
        return None
    return {str(k): str(v) for k, v in value.items()}


def pixel_values(processor: Any, frames: np.ndarray):
    """uint8 frames [N, H, W, 3] -> the vision tower's input [N, 3, S, S] (the processor's own resize and normalization)."""
    out = processor.image_processor(images=[list(frames)], return_tensors="pt", do_image_splitting=False)
    return out["pixel_values"][0]


def base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (LoRA layers stay in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


# --------------------------------------------------------------------------- heads


@dataclass
class HeadsConfig:
    hidden_size: int
    speak_threshold: float = 0.5
    dst_threshold: float = 0.5
    format_version: int = FORMAT_VERSION
    fps: float = 2.0
    max_frames: int = 64  # frames per training window (vt-infer's cache budget is its own --max-kv-cache-tokens)


def make_heads(hidden_size: int):
    """Two binary heads (speak, DST update) on the decision position's hidden state: logits, not probabilities."""
    import torch

    class DstHeads(torch.nn.Module):
        def __init__(self, hidden: int):
            super().__init__()
            self.speak = torch.nn.Linear(hidden, 1)
            self.dst_update = torch.nn.Linear(hidden, 1)

        def forward(self, hidden_states):
            return self.speak(hidden_states).squeeze(-1), self.dst_update(hidden_states).squeeze(-1)

    return DstHeads(hidden_size)


def save_heads(model_dir: Path, heads: Any, config: HeadsConfig) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()}, str(model_dir / HEADS_WEIGHTS))
    write_json(model_dir / HEADS_CONFIG, asdict(config))


def load_heads(model_dir: Path):
    """(heads module, HeadsConfig) saved by vt-train dst beside the model."""
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    if not (model_dir / HEADS_WEIGHTS).is_file() or not (model_dir / HEADS_CONFIG).is_file():
        raise InputError(f"{model_dir}: no {HEADS_WEIGHTS} / {HEADS_CONFIG}: not a model trained by `vt-train dst`")
    raw = read_json(model_dir / HEADS_CONFIG)
    try:
        config = HeadsConfig(**raw)
    except TypeError as err:
        raise InputError(f"{model_dir / HEADS_CONFIG}: {err}") from err
    if config.format_version != FORMAT_VERSION:
        raise InputError(f"{model_dir / HEADS_CONFIG}: format version {config.format_version}, this code reads {FORMAT_VERSION}")
    heads = make_heads(config.hidden_size)
    heads.load_state_dict(load_file(str(model_dir / HEADS_WEIGHTS)))
    return heads.eval(), config
