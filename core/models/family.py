"""What a model family is, and the registry that maps a name, a hub id or a checkpoint to one.

A family is one object carrying its own behaviour: which config `model_type`s and hub ids are its
own, where its parts sit (for freezing, per-part learning rates, LoRA), how the frame size is read
from and set on its processor, how frames and their exact times enter the processor, and how its
`tiny-<family>` variant is built offline. Each family lives in one file under `families/` and
registers itself with `register`; nothing else in the model layer knows a family by name.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import InputError

# Qwen2-architecture language models (Qwen2-VL ... Qwen3-VL, LLaVA-OneVision, VideoLLaMA3, SmolLM2): attention
# and MLP projections. LoRA stays inside `decoder_layers`, so the vision towers' same-named modules
# (Qwen2.5-VL's vision MLP, SigLIP's q/k/v) are never adapted.
LM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# The --video-max-pixels help of every command that takes the budget (vt-train sft, vt-infer generate/profile).
VIDEO_MAX_PIXELS_DOC = (
    "per-clip pixel budget (Qwen families), qwen-vl-utils' total_pixels / VIDEO_MAX_PIXELS: each temporal patch "
    "of 2 frames gets an even share, so a frame has at most BUDGET / ceil(frames / 2) px (within the processor's "
    "per-frame floor x 1.05 and ceiling) and the clip at most BUDGET / (patch x merge)^2 video tokens; frames keep "
    "their aspect ratio, sides multiples of patch x merge (tools/train/README.md tabulates tokens per frame) "
    "[default: no budget, every frame at the frame size]"
)


@dataclass(frozen=True)
class Family(ABC):
    """A model family. Subclasses implement the geometry and the tiny builder; the rest is data."""

    name: str
    model_types: tuple[str, ...]  # config.json `model_type` values that belong to this family
    hub_ids: dict[str, str]  # registry short names -> hub ids
    end_of_turn: str  # the token that closes an assistant turn (a stop token of generation)
    lora_target_modules: tuple[str, ...] = LM_PROJECTIONS
    # Attribute paths from the loaded model (AutoModelForImageTextToText) to its parts, for freezing,
    # per-part learning rates and parameter reports (vt-train). A part nested in another (a projector
    # inside the vision tower) belongs to the most specific path.
    vision_module: str = "model.vision_model"
    # further vision towers (Mobile-VideoGPT reads frames with a CLIP tower beside its VideoMamba)
    extra_vision_modules: tuple[str, ...] = ()
    projector_module: str = "model.connector"
    # further projector modules (Qwen3-VL's DeepStack mergers feed vision features to early decoder layers)
    extra_projector_modules: tuple[str, ...] = ()
    decoder_layers: str = "model.language_model.layers"  # the language model's decoder blocks (a ModuleList)
    # How the answer joins the generation prompt: SmolVLM's "Assistant:" takes " " + answer; the
    # ChatML prompts (Qwen, LLaVA-OneVision, VideoLLaMA3) end in "assistant\n" and the answer follows.
    answer_prefix: str = ""
    min_frames: int = 1  # the video processor's least frame count: shorter clips repeat their last frame
    # How exact frame times reach the model besides the prompt's own text (docs and --help).
    timestamps: str = "none (frames enter as a video; times only in the prompt text)"
    # released architectures this family can build with random weights (size and speed benchmarks):
    # name -> the config it is built from (see `build_reference`)
    reference_archs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # its tiny builder merges TinySpec.token_merge x token_merge patches per token (otherwise always 2 x 2)
    tiny_token_merge: bool = False

    # ------------------------------------------------------------------ loading

    def load_processor(self, source: str, trust_remote_code: bool = False) -> Any:
        """The processor of a checkpoint (a local directory or a hub id)."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)

    def load_model(self, source: str, dtype: Any, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        """The model of a checkpoint with its weights, as published (`kwargs`: quantization_config,
        device_map). A family whose checkpoints transformers' Auto classes cannot read overrides this."""
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)

    def empty_model(self, source: str, trust_remote_code: bool = False) -> Any:
        """The checkpoint's architecture in float32 without reading or initialising its weights (a state dict
        saved elsewhere fills them: int8-dynamic checkpoints)."""
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText
        from transformers.initialization import no_init_weights

        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        with no_init_weights():
            return AutoModelForImageTextToText.from_config(config, dtype=torch.float32, trust_remote_code=trust_remote_code)

    # ------------------------------------------------------------------ geometry

    @abstractmethod
    def frame_size(self, processor: Any) -> int:
        """The square side (px) the processor feeds the vision tower: frames are decoded at this size."""

    @abstractmethod
    def set_frame_size(self, processor: Any, model_config: Any, size: int) -> int:
        """Make the processor feed `size` x `size` px frames (resolution sweeps); returns tokens per frame.

        Where a temporal patch merges 2 frames (Qwen), a frame's share is half its patch's tokens, rounded up.
        """

    # ------------------------------------------------------------------ per-clip pixel budget

    @property
    def video_pixel_budget(self) -> bool:
        """Whether the family fits a clip's frames to a per-clip pixel budget (it overrides `budget_videos`)."""
        return type(self).budget_videos is not Family.budget_videos

    def check_video_max_pixels(self, max_pixels: int | None) -> None:
        """Refuse a per-clip pixel budget for a family without one (bad input, before any model loads)."""
        if max_pixels is not None and not self.video_pixel_budget:
            budgeted = ", ".join(f.name for f in FAMILIES.values() if f.video_pixel_budget)
            raise InputError(f"--video-max-pixels {max_pixels}: the {self.name} family has no per-clip pixel budget "
                             f"(its processor sizes frames on its own); the budget is for {budgeted}")

    def budget_videos(self, processor: Any, videos: Sequence[np.ndarray], max_pixels: int) -> list[np.ndarray]:
        """Each clip's frames resized so that the clip fits `max_pixels` (a per-clip budget); the processor
        then takes them as they are."""
        self.check_video_max_pixels(max_pixels)  # refuses: this family has no budget
        return list(videos)

    def budget_frame(self, processor: Any, height: int, width: int, n_frames: int,
                     max_pixels: int) -> tuple[int, int, int]:
        """(height px, width px, tokens per frame) that `height` x `width` px frames of an `n_frames` clip get
        under the budget."""
        self.check_video_max_pixels(max_pixels)  # refuses: this family has no budget
        return height, width, 0

    # ------------------------------------------------------------------ frames into the processor

    def pad_frames(self, video: np.ndarray, times: list[float]) -> tuple[np.ndarray, list[float]]:
        """A clip shorter than `min_frames` repeats its last frame (and its time), as the processors themselves
        pad a temporal patch; Qwen3-VL's resize refuses a single frame outright."""
        if 0 < len(video) < self.min_frames:
            extra = self.min_frames - len(video)
            video = np.concatenate([video, np.repeat(video[-1:], extra, axis=0)])
            times = times + [times[-1]] * extra
        return video, times

    def video_inputs(self, videos: Sequence[np.ndarray], timestamps: Sequence[Sequence[float]],
                     durations: Sequence[float]) -> dict[str, Any]:
        """The processor's keyword arguments for a batch of clips with their exact frame times.

        Times enter `VideoMetadata` as frame indices on a 1 kHz clock, exact to the millisecond whatever the
        source frame rate; the processors that print or embed times (SmolVLM2, Qwen2.5-VL's M-RoPE,
        Qwen3-VL, VideoLLaMA3) read them from there, and none resamples (`do_sample_frames=False`).
        """
        from transformers.video_utils import VideoMetadata

        padded = [self.pad_frames(np.asarray(v), list(t)) for v, t in zip(videos, timestamps)]
        metadata = [
            VideoMetadata(total_num_frames=max(1, round(d * 1000)), fps=1000.0, duration=d,
                          frames_indices=[round(t * 1000) for t in times])
            for (_, times), d in zip(padded, durations)
        ]
        return {"videos": [v for v, _ in padded], "video_metadata": metadata, "do_sample_frames": False}

    # ------------------------------------------------------------------ tiny variant

    def build_tiny(self, spec: Any, corpus: Iterable[str]) -> tuple[Any, Any]:
        """(model, processor) at toy size with random weights, from the family's own transformers classes and
        a tokenizer trained on `corpus` (`tiny.build_tiny` seeds, checks the spec and saves)."""
        raise InputError(f"family {self.name} has no tiny variant")

    def save_built(self, model: Any, processor: Any, out_dir: Path) -> Path:
        """Write a model built offline (tiny variant, reference architecture) as the family's checkpoints are
        published, so that loading it goes through the code real checkpoints go through. Default: save_pretrained."""
        from videotune.core.models.tiny import save_built

        return save_built(model, processor, out_dir)

    def build_reference(self, arch: str, corpus: Iterable[str]) -> tuple[Any, Any]:
        """(model, processor) of the released architecture `arch` (a key of `reference_archs`) with random
        weights (`tiny.build_reference` seeds and saves)."""
        raise InputError(f"family {self.name} has no reference architectures")


@dataclass(frozen=True)
class ModelRef:
    family: Family
    source: str  # a local directory or a hub id, passed to from_pretrained
    is_local: bool
    # a PEFT adapter directory (LoRA/QLoRA output) loaded on top of `source`, or None
    adapter: str | None = None


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the registry (each family file calls this once, at import)."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def family_of_model_type(model_type: str, where: Path) -> Family:
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise InputError(f"{where}: model_type {model_type!r} belongs to no registered family ({', '.join(FAMILIES)})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not readable as JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def resolve(name_or_path: str) -> ModelRef:
    """Map a registry name, a hub id, a local checkpoint directory or a PEFT adapter directory to its family."""
    path = Path(name_or_path)
    if path.is_dir():
        config_file = path / "config.json"
        adapter_file = path / "adapter_config.json"
        if not config_file.is_file() and adapter_file.is_file():
            # a LoRA/QLoRA adapter (vt-train sft's adapter/): its base model names the family
            base = _read_json(adapter_file).get("base_model_name_or_path")
            if not isinstance(base, str) or not base:
                raise InputError(f"{adapter_file}: no base_model_name_or_path to load the adapter onto")
            base_ref = resolve(base)
            if base_ref.adapter is not None:
                raise InputError(f"{adapter_file}: the base model {base} is itself an adapter")
            return ModelRef(base_ref.family, base_ref.source, base_ref.is_local, adapter=str(path))
        if not config_file.is_file():
            raise InputError(f"{path}: not a model directory (no config.json)")
        model_type = _read_json(config_file).get("model_type", "")
        return ModelRef(family_of_model_type(model_type, config_file), str(path), True)
    for family in FAMILIES.values():
        if name_or_path in family.hub_ids:
            return ModelRef(family, family.hub_ids[name_or_path], False)
        if name_or_path in family.hub_ids.values():
            return ModelRef(family, name_or_path, False)
    if name_or_path.startswith("tiny-") and name_or_path[5:] in FAMILIES:
        raise InputError(
            f"{name_or_path!r} is built offline, not downloaded: run "
            f"`vt-train tiny-model --family {name_or_path[5:]} --corpus EXAMPLES.jsonl --out DIR` and pass DIR"
        )
    known = [n for f in FAMILIES.values() for n in f.hub_ids]
    raise InputError(f"unknown model {name_or_path!r}: not a local model directory nor one of {known}")
