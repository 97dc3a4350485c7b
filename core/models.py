"""Model registry: a name or a path -> a family adapter that loads, prompts and batches it.

A family adapter knows how to load a checkpoint (hub id or local path), which processor it
uses, how frames enter the prompt, its default frame count and its LoRA target modules.
`tiny-<family>` variants are built offline (`build_tiny`): random weights at toy size, a
tokenizer trained locally on a text corpus, the real processor classes, saved with
save_pretrained so everything downstream loads them by path exactly like real weights.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import InputError

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


# Qwen2-architecture language models (Qwen2-VL ... Qwen3-VL, LLaVA-OneVision, VideoLLaMA3): attention and
# MLP projections. LoRA stays inside `decoder_layers`, so the vision towers' same-named modules
# (Qwen2.5-VL's vision MLP, SigLIP's q/k/v) are never adapted.
QWEN_LM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # config.json `model_type` values that belong to this family
    video_input: str  # "native": the processor takes a video; "images": a list of frames
    default_frames: int
    lora_target_modules: tuple[str, ...]
    end_of_turn: str  # the token that closes an assistant turn
    hub_ids: dict[str, str]  # registry short names -> hub ids
    # Attribute paths from the loaded model (AutoModelForImageTextToText) to its parts, for freezing,
    # per-part learning rates and parameter reports (vt-train). A part nested in another (a projector
    # inside the vision tower) belongs to the most specific path.
    vision_module: str = "model.vision_model"
    projector_module: str = "model.connector"
    # further projector modules (Qwen3-VL's DeepStack mergers feed vision features to early decoder layers)
    extra_projector_modules: tuple[str, ...] = ()
    decoder_layers: str = "model.text_model.layers"  # the language model's decoder blocks (a ModuleList)
    # How the answer joins the generation prompt: SmolVLM's "Assistant:" takes " " + answer; the
    # ChatML prompts (Qwen, LLaVA-OneVision, VideoLLaMA3) end in "assistant\n" and the answer follows.
    answer_prefix: str = " "
    processor_classes: tuple[str, ...] = ("SmolVLMProcessor",)  # processors of this family (class names)
    frame_geometry: str = "smolvlm"  # how the frame size is read and set: a key of FRAME_GEOMETRIES
    min_frames: int = 1  # the video processor's least frame count: shorter clips repeat their last frame
    # How exact frame times reach the model besides the prompt's own text (docs and --help).
    timestamps: str = "VideoMetadata: 'Frame from MM:SS' before each frame"


FAMILIES: dict[str, Family] = {
    "smolvlm2": Family(
        name="smolvlm2",
        model_types=("smolvlm",),
        video_input="native",
        default_frames=8,
        # the language model's attention and MLP projections; the vision tower stays as is
        lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        end_of_turn="<end_of_utterance>",
        hub_ids={
            "smolvlm2-256m": "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
            "smolvlm2-500m": "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
            "smolvlm2-2.2b": "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        },
    ),
    # The Qwen hub ids below are the published Instruct checkpoints as named on the hub in 2025; no
    # machine here reaches the hub, so they are not verified to download from here.
    "qwen2-vl": Family(
        name="qwen2-vl",
        model_types=("qwen2_vl",),
        video_input="native",
        default_frames=8,
        lora_target_modules=QWEN_LM_PROJECTIONS,
        end_of_turn="<|im_end|>",
        hub_ids={"qwen2-vl-2b": "Qwen/Qwen2-VL-2B-Instruct", "qwen2-vl-7b": "Qwen/Qwen2-VL-7B-Instruct"},
        vision_module="model.visual", projector_module="model.visual.merger",
        decoder_layers="model.language_model.layers", answer_prefix="",
        processor_classes=("Qwen2VLProcessor",), frame_geometry="qwen-per-frame", min_frames=1,
        timestamps="none (M-RoPE time positions count temporal patches of 2 frames)",
    ),
    "qwen2.5-vl": Family(
        name="qwen2.5-vl",
        model_types=("qwen2_5_vl",),
        video_input="native",
        default_frames=8,
        lora_target_modules=QWEN_LM_PROJECTIONS,
        end_of_turn="<|im_end|>",
        hub_ids={"qwen2.5-vl-3b": "Qwen/Qwen2.5-VL-3B-Instruct", "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct"},
        vision_module="model.visual", projector_module="model.visual.merger",
        decoder_layers="model.language_model.layers", answer_prefix="",
        processor_classes=("Qwen2_5_VLProcessor",), frame_geometry="qwen-per-frame", min_frames=1,
        timestamps="second_per_grid_ts (seconds per temporal patch, from the sampled frame rate) scales M-RoPE time",
    ),
    "qwen3-vl": Family(
        name="qwen3-vl",
        model_types=("qwen3_vl",),
        video_input="native",
        default_frames=8,
        lora_target_modules=QWEN_LM_PROJECTIONS,
        end_of_turn="<|im_end|>",
        hub_ids={"qwen3-vl-2b": "Qwen/Qwen3-VL-2B-Instruct", "qwen3-vl-4b": "Qwen/Qwen3-VL-4B-Instruct",
                 "qwen3-vl-8b": "Qwen/Qwen3-VL-8B-Instruct"},
        vision_module="model.visual", projector_module="model.visual.merger",
        extra_projector_modules=("model.visual.deepstack_merger_list",),
        decoder_layers="model.language_model.layers", answer_prefix="",
        processor_classes=("Qwen3VLProcessor",), frame_geometry="qwen-per-clip", min_frames=2,
        timestamps="'<t seconds>' text before each temporal patch (mean time of its 2 frames, exact indices)",
    ),
    "llava-onevision": Family(
        name="llava-onevision",
        model_types=("llava_onevision",),
        video_input="native",
        default_frames=8,
        lora_target_modules=QWEN_LM_PROJECTIONS,
        end_of_turn="<|im_end|>",
        # llava-hf's transformers-format conversions. LLaVA-Video (lmms-lab/LLaVA-Video-7B-Qwen2) is the same
        # architecture but published only in LLaVA-NeXT's own format (model_type "llava"): converted to
        # LlavaOnevision classes and saved, its directory resolves here by model_type.
        hub_ids={"llava-onevision-0.5b": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
                 "llava-onevision-7b": "llava-hf/llava-onevision-qwen2-7b-ov-hf"},
        vision_module="model.vision_tower", projector_module="model.multi_modal_projector",
        decoder_layers="model.language_model.layers", answer_prefix="",
        processor_classes=("LlavaOnevisionProcessor",), frame_geometry="llava-onevision", min_frames=1,
        timestamps="none (frames enter as a video; times only in the prompt text)",
    ),
    "videollama3": Family(
        name="videollama3",
        model_types=("video_llama_3",),
        video_input="native",
        default_frames=8,
        lora_target_modules=QWEN_LM_PROJECTIONS,
        end_of_turn="<|im_end|>",
        # the transformers-format conversion (an image-trained 2B); DAMO-NLP-SG's own repos need remote code
        hub_ids={"videollama3-2b": "lkhl/VideoLLaMA3-2B-Image-HF"},
        vision_module="model.vision_model", projector_module="model.projector",
        decoder_layers="model.language_model.layers", answer_prefix="",
        processor_classes=("VideoLlama3Processor",), frame_geometry="videollama3", min_frames=1,
        timestamps="'Time t s:' text before each frame's tokens (exact indices)",
    ),
}


@dataclass(frozen=True)
class ModelRef:
    family: Family
    source: str  # a local directory or a hub id, passed to from_pretrained
    is_local: bool


def resolve(name_or_path: str) -> ModelRef:
    """Map a registry name, a hub id or a local checkpoint directory to its family."""
    path = Path(name_or_path)
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise InputError(f"{path}: not a model directory (no config.json)")
        model_type = json.loads(config_file.read_text()).get("model_type", "")
        for family in FAMILIES.values():
            if model_type in family.model_types:
                return ModelRef(family, str(path), True)
        raise InputError(f"{config_file}: model_type {model_type!r} belongs to no registered family ({', '.join(FAMILIES)})")
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


def load(ref: ModelRef, dtype: str = "float32", trust_remote_code: bool = False, device: str = "cpu"):
    """Load model and processor; `trust_remote_code` is opt-in (NVILA, Mobile-VideoGPT need it).

    Quantized checkpoints load here unchanged for every caller: torchao ones (int8/int4 weight-only)
    through transformers' own `quantization_config` in config.json (TorchAoConfig); GPTQ ones through
    GPTQModel, which picks a CUDA or CPU kernel (transformers' own GPTQ path, via optimum, finds no
    decoder blocks in these architectures); a torch.ao dynamic-int8 one, which transformers cannot
    rebuild, through its `videotune.json` (see `load_dynamic_int8`).
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    quantization = read_quantization(ref.source) if ref.is_local else None
    torch_dtype = getattr(torch, dtype) if dtype != "auto" else "auto"
    try:
        processor = AutoProcessor.from_pretrained(ref.source, trust_remote_code=trust_remote_code)
        if quantization is not None and quantization.get("method") == "int8-dynamic":
            if dtype not in ("float32", "auto") or not str(device).startswith("cpu"):
                raise InputError(
                    f"{ref.source}: an int8-dynamic model runs in float32 on the CPU only "
                    f"(torch.ao's quantized kernels are CPU ones); got dtype {dtype}, device {device}"
                )
            return load_dynamic_int8(ref.source, trust_remote_code=trust_remote_code), processor
        if quantization is not None and quantization.get("method") == "gptq":
            return load_gptq(ref.source, device=device, trust_remote_code=trust_remote_code), processor
        model = AutoModelForImageTextToText.from_pretrained(
            ref.source, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except OSError as err:
        where = "directory" if ref.is_local else "hub id (is the hub reachable, or the model cached?)"
        raise InputError(f"cannot load model from {ref.source} ({where}): {err}") from err
    return model.to(device), processor


# --------------------------------------------------------------------------- quantized checkpoints

# Written by vt-quantize into every model directory it makes: {"quantization": {"method": ...}}.
QUANTIZATION_FILE = "videotune.json"
# The int8-dynamic weights: torch.save of the quantized model's state dict (packed int8 Linear
# weights with their scales, per-row quint8 embeddings, the rest float32).
DYNAMIC_INT8_WEIGHTS = "model.int8-dynamic.pt"


def read_quantization(model_dir: str | Path) -> dict[str, Any] | None:
    """The `quantization` block of a model directory's videotune.json, or None."""
    marker = Path(model_dir) / QUANTIZATION_FILE
    if not marker.is_file():
        return None
    try:
        block = json.loads(marker.read_text()).get("quantization")
    except (json.JSONDecodeError, AttributeError) as err:
        raise InputError(f"{marker}: not a JSON object with a `quantization` block ({err})") from err
    return block if isinstance(block, dict) else None


# torch.ao's int8 kernels pay a fixed cost per call (quantizing the activations: ~21 us per Linear at
# batch 1 on the 2 AVX-512 cores here, whatever its size) that a small layer's float32 matmul never
# reaches: a 384x448 Linear took 20.7 us in fp32 against 22.2 us in int8, a 448x448 one 23.8 against
# 22.5 us, a 576x576 one 35.2 against 24.6 us; a quantized Embedding lookup costs ~10 us more than a
# float one at any size. Layers with fewer weights than this are stored in int8 all the same (the same
# bytes on disk) but dequantized to float32 at load, so they compute at float32 speed.
DYNAMIC_INT8_MIN_WEIGHTS = 196_608  # weights: a 384 x 512 Linear


def quantize_dynamic_int8(model, min_weights: int = 0) -> list[str]:
    """torch.ao dynamic int8, in place: every nn.Linear / nn.Embedding with at least `min_weights`
    weights becomes an int8 module (Linear: int8 weights, activations quantized per batch at run time by
    fbgemm/onednn; Embedding: per-row quint8). Returns the names of the smaller ones, left in float:
    `dynamic_int8_state_dict` stores their weights in int8 and `load_dynamic_int8` dequantizes them.

    One function for vt-quantize (which makes the checkpoint) and `load_dynamic_int8` (which must
    rebuild the very same module structure before the saved state dict fits it).
    """
    import torch
    from torch.ao.quantization import quantize_dynamic

    spec: dict[str, Any] = {}
    kept: list[str] = []
    for name, module in model.named_modules():
        qconfig = _dynamic_int8_qconfig(module)
        if qconfig is None:
            continue
        if module.weight.numel() >= min_weights:
            spec[name] = qconfig
        else:
            kept.append(name)
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it moves to torchao; torchao has no dynamic-int8 CPU
        # path with int8 storage that transformers can save, so this stays until it has one.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        if spec:
            quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    return kept


def _dynamic_int8_qconfig(module):
    """The qconfig quantize_dynamic gives this module's exact type (its module swap is by exact type), or None."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, float_qparams_weight_only_qconfig

    return {torch.nn.Linear: default_dynamic_qconfig, torch.nn.Embedding: float_qparams_weight_only_qconfig}.get(type(module))


def dynamic_int8_state_dict(model, kept: Sequence[str]) -> dict[str, Any]:
    """The state dict vt-quantize saves: the int8 modules' packed weights as they are, and each kept
    float module's weight quantized exactly as its int8 module would have held it (per-tensor qint8 for a
    Linear, per-row quint8 for an Embedding), so that the file is as small as if every layer ran in int8."""
    from torch.ao.nn.quantized.modules.utils import _quantize_weight  # what the int8 modules' from_float use

    state = model.state_dict()
    modules = dict(model.named_modules())
    quantized: dict[int, Any] = {}  # a weight shared by two kept modules (tied) is stored once
    for name in kept:
        weight = modules[name].weight  # the Parameter itself: tied modules share it, and its id lives as long
        if id(weight) not in quantized:
            observer = _dynamic_int8_qconfig(modules[name]).weight()
            observer(weight.detach())
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
                quantized[id(weight)] = _quantize_weight(weight.detach().float(), observer)
        state[f"{name}.weight"] = quantized[id(weight)]
    return state


def load_dynamic_int8(model_dir: str | Path, trust_remote_code: bool = False):
    """Rebuild an int8-dynamic checkpoint: the architecture from config.json (no weight init), the same
    quantize_dynamic_int8 as vt-quantize applied (with the size threshold videotune.json records; none
    in checkpoints made before it existed: every layer int8), the kept layers' int8 weights dequantized,
    then the state dict loaded strictly."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig
    from transformers.initialization import no_init_weights

    model_dir = Path(model_dir)
    weights = model_dir / DYNAMIC_INT8_WEIGHTS
    if not weights.is_file():
        raise InputError(f"{model_dir}: {QUANTIZATION_FILE} says int8-dynamic but {DYNAMIC_INT8_WEIGHTS} is missing")
    min_weights = (read_quantization(model_dir) or {}).get("min_int8_weights", 0)
    if isinstance(min_weights, bool) or not isinstance(min_weights, int) or min_weights < 0:
        raise InputError(f"{model_dir / QUANTIZATION_FILE}: min_int8_weights must be a whole number >= 0, got {min_weights!r}")
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    with no_init_weights():  # every weight is overwritten by the state dict below
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32, trust_remote_code=trust_remote_code)
    kept = quantize_dynamic_int8(model, min_weights)
    with warnings.catch_warnings():
        # torch's rebuild of quantized tensors touches TypedStorage and the deprecated quantized-tensor
        # constructors, and says so on every load
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        state = torch.load(weights, map_location="cpu", weights_only=True)
    for name in kept:
        stored = state.get(f"{name}.weight")
        if stored is None or not stored.is_quantized:
            raise InputError(f"{weights}: {name}.weight should hold int8 weights (min_int8_weights {min_weights}), "
                             f"found {'nothing' if stored is None else stored.dtype}")
        state[f"{name}.weight"] = stored.dequantize()
    model.load_state_dict(state, strict=True)
    if (model_dir / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    return model.eval()


def configure_gptqmodel() -> None:
    """Settings GPTQModel reads at import time.

    On small machines GPTQModel sizes its CPU pool to (cores + 1) // 2 workers and then asks for
    2 loader workers from it, which fails with 2 cores; 2 workers is the least it accepts.
    """
    import os

    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, ((os.cpu_count() or 1) + 1) // 2)))


def load_gptq(model_dir: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """A GPTQModel checkpoint as a plain transformers model whose linear layers are GPTQ kernels."""
    configure_gptqmodel()
    try:
        from gptqmodel import GPTQModel
    except ImportError as err:
        raise InputError(f"{model_dir} is a GPTQ model: loading it needs GPTQModel (pip install 'videotune[gptq]') ({err})") from err
    wrapper = GPTQModel.load(str(model_dir), device=str(device), trust_remote_code=trust_remote_code)
    return wrapper.model


def weights_bytes(model_dir: str | Path) -> int:
    """Bytes of a model directory's weight files (safetensors, torch pickles): its size on disk
    less the tokenizer, processor and config files, which do not change with precision."""
    suffixes = (".safetensors", ".pt", ".bin", ".pth")
    return sum(p.stat().st_size for p in Path(model_dir).rglob("*") if p.is_file() and p.name.endswith(suffixes))


def dir_bytes(model_dir: str | Path) -> int:
    """Bytes of every file in a model directory."""
    return sum(p.stat().st_size for p in Path(model_dir).rglob("*") if p.is_file())


def family_of_processor(processor: Any) -> Family:
    """The family a loaded processor belongs to (by its class)."""
    name = type(processor).__name__
    for family in FAMILIES.values():
        if name in family.processor_classes:
            return family
    raise InputError(f"processor {name} belongs to no registered family ({', '.join(FAMILIES)})")


def frame_size(processor: Any) -> int:
    """The square side (px) the processor feeds the vision tower: decode frames at this size."""
    return FRAME_GEOMETRIES[family_of_processor(processor).frame_geometry][0](processor)


def set_frame_size(processor: Any, model_config: Any, size: int) -> int:
    """Make the processor feed `size` x `size` px frames (resolution sweeps); returns tokens per frame.

    Where a temporal patch merges 2 frames (Qwen), a frame's share is half its patch's tokens, rounded up.
    """
    return FRAME_GEOMETRIES[family_of_processor(processor).frame_geometry][1](processor, model_config, size)


def _smolvlm_frame_size(processor: Any) -> int:
    return int(processor.video_processor.max_image_size["longest_edge"])


def _smolvlm_set_frame_size(processor: Any, model_config: Any, size: int) -> int:
    """SmolVLM's vision tower takes any square side that is a multiple of patch_size * scale_factor
    (position ids are bucketed onto its trained grid); the connector's pixel shuffle then gives
    (size / patch_size)^2 / scale_factor^2 tokens per frame, which the processor must expand each
    <image> token to.
    """
    patch = int(model_config.vision_config.patch_size)
    scale = int(model_config.scale_factor)
    if size % (patch * scale):
        raise InputError(
            f"frame size {size} px: must be a multiple of patch_size x scale_factor = {patch} x {scale} = {patch * scale} px"
        )
    tokens = (size // patch) ** 2 // scale**2
    edge = {"longest_edge": size}
    processor.video_processor.size = dict(edge)
    processor.video_processor.max_image_size = dict(edge)
    processor.image_processor.size = dict(edge)
    processor.image_processor.max_image_size = dict(edge)
    processor.image_seq_len = tokens
    return tokens


# qwen-vl-utils' per-frame video ceiling (VIDEO_MAX_PIXELS = 768 x 28 x 28 px): a real checkpoint's
# processor allows up to 12.8 Mpx per image, far beyond what a clip's frames are decoded at.
QWEN_MAX_FRAME_TOKENS = 768


def _merge_factor(processor: Any) -> int:
    """Pixels per merged token side: frame sides must be multiples of patch_size x merge_size."""
    video = processor.video_processor
    return int(video.patch_size) * int(video.merge_size)


def _check_multiple(size: int, factor: int) -> None:
    if size % factor:
        raise InputError(f"frame size {size} px: must be a multiple of patch_size x merge_size = {factor} px")


def _qwen_tokens_per_frame(processor: Any, size: int) -> int:
    temporal = int(getattr(processor.video_processor, "temporal_patch_size", 1) or 1)
    return -(-((size // _merge_factor(processor)) ** 2) // temporal)


def _set_image_pixels(processor: Any, size: int) -> None:
    image = processor.image_processor
    image.size = {"shortest_edge": min(int(image.size["shortest_edge"]), size * size), "longest_edge": size * size}


def _qwen_per_frame_size(processor: Any) -> int:
    """Qwen2-VL / Qwen2.5-VL: `size` bounds the pixels of each frame ([shortest, longest] = [min, max])."""
    factor = _merge_factor(processor)
    budget = min(int(processor.video_processor.size["longest_edge"]), QWEN_MAX_FRAME_TOKENS * factor * factor)
    return max(factor, math.isqrt(budget) // factor * factor)


def _qwen_per_frame_set(processor: Any, model_config: Any, size: int) -> int:
    _check_multiple(size, _merge_factor(processor))
    video = processor.video_processor
    video.size = {"shortest_edge": min(int(video.size["shortest_edge"]), size * size), "longest_edge": size * size}
    _set_image_pixels(processor, size)
    return _qwen_tokens_per_frame(processor, size)


def _qwen_per_clip_size(processor: Any) -> int:
    """Qwen3-VL: `size` bounds a clip's pixels (t x h x w); `max_video_tokens` caps each frame (in tokens)."""
    factor = _merge_factor(processor)
    return max(factor, math.isqrt(int(processor.video_processor.max_video_tokens)) * factor)


def _qwen_per_clip_set(processor: Any, model_config: Any, size: int) -> int:
    factor = _merge_factor(processor)
    _check_multiple(size, factor)
    video = processor.video_processor
    video.max_video_tokens = (size // factor) ** 2
    video.cap_pixels_per_frame = True
    # room for the processor's most frames at this size, so the clip budget never shrinks them
    longest = max(int(video.size["longest_edge"]), size * size * int(video.max_frames))
    video.size = {"shortest_edge": min(int(video.size["shortest_edge"]), size * size), "longest_edge": longest}
    _set_image_pixels(processor, size)
    return _qwen_tokens_per_frame(processor, size)


def _llava_onevision_size(processor: Any) -> int:
    size = processor.video_processor.size
    return int(size["height"] if "height" in size else size["shortest_edge"])


def _llava_onevision_set(processor: Any, model_config: Any, size: int) -> int:
    """SigLIP's learned position embeddings fix the side of every frame: only the trained one works."""
    trained = int(model_config.vision_config.image_size)
    if size != trained:
        raise InputError(
            f"frame size {size} px: LLaVA-OneVision's vision tower has position embeddings for {trained} px frames only"
        )
    patches = (size // int(model_config.vision_config.patch_size)) ** 2
    return math.ceil(math.isqrt(patches) / 2) ** 2  # the 2 x 2 bilinear pooling of video frames


def _videollama3_size(processor: Any) -> int:
    """VideoLLaMA3 splits a clip's pixel budget over its frames; `shortest_edge` is a frame's least pixels."""
    factor = _merge_factor(processor)
    return max(factor, math.isqrt(int(processor.video_processor.size["shortest_edge"])) // factor * factor)


def _videollama3_set(processor: Any, model_config: Any, size: int) -> int:
    factor = _merge_factor(processor)
    _check_multiple(size, factor)
    video = processor.video_processor
    video.size = {"shortest_edge": size * size,
                  "longest_edge": max(int(video.size["longest_edge"]), size * size * int(video.max_frames))}
    _set_image_pixels(processor, size)
    return (size // factor) ** 2


# Family.frame_geometry -> (frame_size(processor), set_frame_size(processor, model_config, size))
FRAME_GEOMETRIES = {
    "smolvlm": (_smolvlm_frame_size, _smolvlm_set_frame_size),
    "qwen-per-frame": (_qwen_per_frame_size, _qwen_per_frame_set),
    "qwen-per-clip": (_qwen_per_clip_size, _qwen_per_clip_set),
    "llava-onevision": (_llava_onevision_size, _llava_onevision_set),
    "videollama3": (_videollama3_size, _videollama3_set),
}


# --------------------------------------------------------------------------- prompts and batches


def _conversation(user_text: str, with_video: bool) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "video"}] if with_video else []
    content.append({"type": "text", "text": user_text})
    return [{"role": "user", "content": content}]


def prompt_text(processor: Any, user_text: str, with_video: bool = True) -> str:
    """The rendered chat prompt up to the assistant's turn (before media expansion)."""
    return processor.apply_chat_template(_conversation(user_text, with_video), add_generation_prompt=True, tokenize=False)


def encode_batch(
    processor: Any,
    family: Family,
    user_texts: Sequence[str],
    videos: Sequence[np.ndarray],
    timestamps: Sequence[Sequence[float]],
    durations: Sequence[float],
    targets: Sequence[str] | None = None,
    padding_side: str = "right",
    images: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Tokenize prompts (+ targets) with their frames into model inputs.

    With `targets`, `labels` hold the target tokens (and the end-of-turn token) and -100
    everywhere else: prompt and media tokens never enter the loss. With `images` (one uint8
    RGB [H, W, 3] array per prompt) the batch is an image batch: `videos`, `timestamps` and
    `durations` must be empty (a batch mixing images and videos is refused).
    """
    if images is not None:
        if len(videos) or len(timestamps) or len(durations):
            raise ValueError(
                "encode_batch: a batch mixes images and videos; batch image examples and video examples separately"
            )
        return encode_image_batch(processor, family, user_texts, images, targets=targets, padding_side=padding_side)
    from transformers.video_utils import VideoMetadata

    tokenizer = processor.tokenizer
    texts = [prompt_text(processor, t) for t in user_texts]
    if targets is not None:
        # SmolVLM: "Assistant:" + " " + target (the space belongs to the target's first token);
        # ChatML families: "assistant\n" + target
        texts = [p + family.answer_prefix + t + family.end_of_turn for p, t in zip(texts, targets)]
    videos, timestamps = _pad_frames(family, videos, timestamps)
    # Timestamps enter VideoMetadata as indices at a 1 kHz clock: exact to the millisecond
    # whatever the source frame rate.
    metadata = [
        VideoMetadata(
            total_num_frames=max(1, round(d * 1000)), fps=1000.0, duration=d,
            frames_indices=[round(t * 1000) for t in ts],
        )
        for ts, d in zip(timestamps, durations)
    ]
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        batch = processor(
            text=texts, videos=[np.asarray(v) for v in videos], video_metadata=metadata,
            padding=True, return_tensors="pt", do_sample_frames=False,
        )
    finally:
        tokenizer.padding_side = previous_side
    batch = dict(batch)
    if targets is not None:
        batch["labels"] = _target_labels(tokenizer, batch["input_ids"], batch["attention_mask"], targets, family)
    return batch


def encode_image_batch(
    processor: Any,
    family: Family,
    user_texts: Sequence[str],
    images: Sequence[np.ndarray],
    targets: Sequence[str] | None = None,
    padding_side: str = "right",
) -> dict[str, Any]:
    """Tokenize prompts (+ targets) with one still image each: chat content {"type": "image"}.

    The image enters as the processor's `images=` (one list per prompt); labels as in `encode_batch`.
    """
    if len(images) != len(user_texts):
        raise ValueError(f"encode_image_batch: {len(user_texts)} prompts but {len(images)} images")
    tokenizer = processor.tokenizer
    conversations = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}] for t in user_texts]
    texts = [processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    if targets is not None:
        texts = [p + family.answer_prefix + t + family.end_of_turn for p, t in zip(texts, targets)]
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        batch = processor(text=texts, images=[[np.asarray(i)] for i in images], padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = previous_side
    batch = dict(batch)
    if targets is not None:
        batch["labels"] = _target_labels(tokenizer, batch["input_ids"], batch["attention_mask"], targets, family)
    return batch


def _pad_frames(family: Family, videos: Sequence[np.ndarray], timestamps: Sequence[Sequence[float]]):
    """Clips shorter than the family's least frame count repeat their last frame (and its time), as the
    processors themselves pad a temporal patch; Qwen3-VL's resize refuses a single frame outright."""
    padded_videos, padded_times = [], []
    for video, times in zip(videos, timestamps):
        video, times = np.asarray(video), list(times)
        if 0 < len(video) < family.min_frames:
            extra = family.min_frames - len(video)
            video = np.concatenate([video, np.repeat(video[-1:], extra, axis=0)])
            times = times + [times[-1]] * extra
        padded_videos.append(video)
        padded_times.append(times)
    return padded_videos, padded_times


def _target_labels(tokenizer: Any, input_ids, attention_mask, targets: Sequence[str], family: Family):
    import torch

    labels = torch.full_like(input_ids, -100)
    for row, target in enumerate(targets):
        tail = tokenizer(family.answer_prefix + target + family.end_of_turn, add_special_tokens=False)["input_ids"]
        positions = attention_mask[row].nonzero().flatten()
        last = int(positions[-1]) + 1
        first = last - len(tail)
        if first < 0 or input_ids[row, first:last].tolist() != tail:
            raise ValueError(
                "the target's tokens differ in context from standalone: the tokenizer merges across the "
                f"prompt/answer boundary (target {target[:60]!r})"
            )
        labels[row, first:last] = input_ids[row, first:last]
    return labels


# --------------------------------------------------------------------------- tiny variants

SMOLVLM_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
    "<global-img>", "<video>",
] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]


def train_tokenizer(
    corpus: Iterable[str], vocab_size: int, special_tokens: list[str], *,
    bos_token: str | None = "<|im_start|>", eos_token: str | None = "<end_of_utterance>",
    pad_token: str | None = "<|endoftext|>", unk_token: str | None = "<|endoftext|>",
    named_tokens: dict[str, str] | None = None,
):
    """A byte-level BPE tokenizer trained on `corpus`, wrapped as a transformers fast tokenizer.

    The defaults are SmolVLM's token roles; other families pass theirs (Qwen: no BOS, <|im_end|> as EOS).
    `named_tokens` become tokenizer attributes the processors look up (`image_token`, `video_token`, ...).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if named_tokens is None:
        named_tokens = {"image_token": "<image>", "video_token": "<video>",
                        "fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
                        "end_of_utterance_token": "<end_of_utterance>"}
    roles = {"bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token, "unk_token": unk_token}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, **{k: v for k, v in roles.items() if v is not None}, extra_special_tokens=named_tokens,
    )


@dataclass
class TinySpec:
    """Toy sizes: a random-init model that still learns the synthetic tasks on a CPU."""

    frame_size: int = 64  # px, square
    patch_size: int = 8  # px -> (64/8)^2 = 64 patches, 16 tokens per frame after 2x2 pixel shuffle
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    heads: int = 4
    vocab_size: int = 1024
    frames: int = 8


def build_tiny(family: str, out_dir: str | Path, corpus: Iterable[str], seed: int = 0, spec: TinySpec | None = None) -> Path:
    """Build `tiny-<family>` offline and save it like a real checkpoint (config, weights, processor).

    SmolVLM2 is built here; the other families in core/tiny.py, from their own transformers classes.
    """
    from videotune.core import tiny

    if family != "smolvlm2" and family not in tiny.BUILDERS:
        raise InputError(f"no tiny variant for family {family!r}; available: {', '.join(['smolvlm2', *tiny.BUILDERS])}")
    spec = spec or TinySpec()
    if spec.frame_size % (2 * spec.patch_size):
        raise InputError(f"frame size {spec.frame_size} px: must be a multiple of 2 x patch size = {2 * spec.patch_size} px")
    if family != "smolvlm2":
        return _save_tiny(*_seeded(seed, tiny.BUILDERS[family], spec, corpus), Path(out_dir))
    import torch
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(corpus, spec.vocab_size, SMOLVLM_SPECIAL_TOKENS)
    scale_factor = 2
    image_seq_len = (spec.frame_size // spec.patch_size) ** 2 // scale_factor**2
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": spec.vision_hidden, "intermediate_size": spec.vision_hidden * 2,
            "num_hidden_layers": spec.vision_layers, "num_attention_heads": spec.heads,
            "image_size": spec.frame_size, "patch_size": spec.patch_size,
        },
        text_config={
            "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_hidden * 2, "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.heads, "num_key_value_heads": spec.heads,
            "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    size = {"longest_edge": spec.frame_size}
    image_processor = SmolVLMImageProcessor(
        size=size, max_image_size=size, do_image_splitting=False, resample=2,  # bilinear: toy frames
    )
    video_processor = SmolVLMVideoProcessor(
        size=size, max_image_size=size, resample=2, num_frames=spec.frames, fps=1, do_sample_frames=False,
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        image_seq_len=image_seq_len, chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _seeded(seed: int, builder, spec: TinySpec, corpus: Iterable[str]):
    import torch

    torch.manual_seed(seed)  # the random weights; the tokenizer's training is deterministic on its own
    return builder(spec, corpus)


def _save_tiny(model, processor, out_dir: Path) -> Path:
    tokenizer = processor.tokenizer
    # Generation stops at the end of the assistant turn (the tokenizer's EOS) and pads with its pad token.
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
