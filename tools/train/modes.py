"""Training modes: which parameters train (full, LoRA, QLoRA, last N blocks, frozen parts), and reports.

The parts of a model (vision tower, projector, decoder blocks) are found through the family's
attribute paths (core.models.Family), so one code path serves every family. A parameter belongs
to the most specific part whose path prefixes its name: a projector nested in the vision tower
(Qwen2-VL's merger) counts as projector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from videotune.core import models
from videotune.core.io import InputError

log = logging.getLogger("videotune.train")

Mode = Literal["full", "lora", "qlora"]
GROUPS = ("vision", "projector", "decoder_blocks", "language_other")


class ModeOptions(BaseModel):
    """The flags that choose what trains; shared by `vt-train sft` and `vt-train params`."""

    mode: Mode = Field(
        "full", description="full: train the weights themselves; lora: PEFT LoRA adapters on the language model's "
        "projections (base frozen); qlora: LoRA on a 4-bit (bitsandbytes NF4) base, CUDA only")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int | None = Field(None, ge=1, description="LoRA alpha [default: 2 x rank]")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    last_blocks: int = Field(
        0, ge=0, description="train only the last N decoder blocks of the language model (full: those blocks' "
        "weights, with embeddings, earlier blocks, final norm and LM head frozen; lora: adapters in those blocks "
        "only); 0 = all")
    freeze_vision: bool = Field(False, description="freeze the vision tower (full mode; LoRA always freezes it)")
    freeze_projector: bool = Field(
        False, description="freeze the vision-to-language projector (full mode; LoRA always freezes it)")
    projector_lr: float | None = Field(
        None, gt=0, description="learning rate of the projector's parameters (own optimizer group) [default: --lr]")

    @model_validator(mode="after")
    def _check_mode(self):
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_r
        if self.mode != "full" and self.projector_lr is not None:
            raise ValueError("--projector-lr needs --mode full: LoRA modes keep the projector frozen")
        if self.projector_lr is not None and self.freeze_projector:
            raise ValueError("--projector-lr with --freeze-projector: a frozen projector has no learning rate")
        return self


@dataclass
class Parts:
    """Parameter-name prefixes of a model's parts (as named by model.named_parameters())."""

    visions: tuple[str, ...]
    projectors: tuple[str, ...]
    decoder_layers: str
    n_layers: int

    def group(self, name: str) -> str:
        """Which part a parameter belongs to (the most specific prefix wins)."""
        name = _strip_peft(name)
        if any(name.startswith(prefix + ".") for prefix in self.projectors):
            return "projector"
        if any(name.startswith(prefix + ".") for prefix in self.visions):
            return "vision"
        if name.startswith(self.decoder_layers + "."):
            return "decoder_blocks"
        return "language_other"

    def layer_index(self, name: str) -> int | None:
        """The decoder block a parameter sits in, or None outside the decoder blocks."""
        name = _strip_peft(name)
        if not name.startswith(self.decoder_layers + "."):
            return None
        return int(name[len(self.decoder_layers) + 1:].split(".", 1)[0])


def _strip_peft(name: str) -> str:
    # PeftModel names parameters `base_model.model.<original name>`
    return name.removeprefix("base_model.model.")


def _base(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the wrapper shares its modules)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def find_parts(model: Any, family: models.Family) -> Parts:
    """Resolve the family's attribute paths on `model`; a path that does not resolve is an error naming it."""
    base = _base(model)
    for path in (family.vision_module, *family.extra_vision_modules, family.projector_module,
                 *family.extra_projector_modules, family.decoder_layers):
        try:
            base.get_submodule(path)
        except AttributeError as err:
            raise InputError(
                f"model family {family.name}: no module {path!r} in {type(base).__name__} "
                "(set vision_module/projector_module/decoder_layers in its file under core/models/families/)"
            ) from err
    layers = base.get_submodule(family.decoder_layers)
    return Parts((family.vision_module, *family.extra_vision_modules),
                 (family.projector_module, *family.extra_projector_modules), family.decoder_layers, len(layers))


def apply_mode(model: Any, family: models.Family, options: ModeOptions) -> Any:
    """Set requires_grad (full) or wrap with LoRA adapters (lora/qlora); returns the model to train."""
    parts = find_parts(model, family)
    if options.last_blocks > parts.n_layers:
        raise InputError(f"--last-blocks {options.last_blocks}: the model has {parts.n_layers} decoder blocks")
    first_trained = parts.n_layers - options.last_blocks if options.last_blocks else 0
    if options.mode == "full":
        for name, param in model.named_parameters():
            group = parts.group(name)
            train = True
            if group == "vision" and options.freeze_vision:
                train = False
            elif group == "projector" and options.freeze_projector:
                train = False
            elif options.last_blocks and group == "language_other":
                train = False
            elif options.last_blocks and group == "decoder_blocks":
                train = parts.layer_index(name) >= first_trained
            param.requires_grad_(train)
        return model
    from peft import LoraConfig, get_peft_model

    if options.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        # casts norms to float32 and enables input gradients so checkpointed 4-bit layers backpropagate
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = lora_targets(model, family, parts, first_trained)
    if not targets:
        raise InputError(f"model family {family.name}: no Linear module named {family.lora_target_modules} "
                         f"under {family.decoder_layers}")
    lora = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def lora_targets(model: Any, family: models.Family, parts: Parts, first_layer: int = 0) -> list[str]:
    """Full names of the decoder blocks' projections LoRA adapts (blocks >= first_layer).

    Exact names, not a pattern: the vision tower's modules share names (q_proj, ...) in most
    families, and PEFT matches a list entry only as the whole module name or its dotted suffix.
    """
    names = []
    for name, _ in _base(model).named_modules():
        layer = parts.layer_index(name)
        if layer is None or layer < first_layer:
            continue
        if name.rsplit(".", 1)[-1] in family.lora_target_modules:
            names.append(name)
    return names


def parameter_report(model: Any, family: models.Family) -> dict[str, Any]:
    """Total and trainable parameters, overall and per part (vision, projector, decoder blocks, rest).

    4-bit weights are packed two per byte: their numel() counts bytes, so they are counted from
    the original shape where bitsandbytes records it.
    """
    parts = find_parts(model, family)
    groups = {g: {"total": 0, "trainable": 0} for g in GROUPS}
    for name, param in model.named_parameters():
        n = _numel(param)
        entry = groups[parts.group(name)]
        entry["total"] += n
        if param.requires_grad:
            entry["trainable"] += n
    total = sum(g["total"] for g in groups.values())
    trainable = sum(g["trainable"] for g in groups.values())
    return {"total": total, "trainable": trainable,
            "trainable_pct": round(100 * trainable / total, 4) if total else 0.0,
            "decoder_blocks": parts.n_layers, "groups": groups}


def _numel(param: Any) -> int:
    shape = getattr(param, "quant_state", None)
    if shape is not None and getattr(shape, "shape", None) is not None:
        n = 1
        for d in shape.shape:
            n *= int(d)
        return n
    return int(param.numel())


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'part':<16}{'total':>14}{'trainable':>14}"]
    for group, counts in report["groups"].items():
        lines.append(f"{group:<16}{counts['total']:>14,}{counts['trainable']:>14,}")
    lines.append(f"{'all':<16}{report['total']:>14,}{report['trainable']:>14,}  ({report['trainable_pct']:.2f}% trainable)")
    return "\n".join(lines)


def projector_param_names(model: Any, family: models.Family) -> set[str]:
    """Names of the projector's trainable parameters (as the model to train names them)."""
    parts = find_parts(model, family)
    return {n for n, p in model.named_parameters() if p.requires_grad and parts.group(n) == "projector"}


def report_parameters(model_name: str, options: ModeOptions, trust_remote_code: bool = False) -> dict[str, Any]:
    """Load `model_name`, apply the mode options, and count parameters per part (`vt-train params`)."""
    ref = models.resolve(model_name)
    model, _ = models.load(ref, trust_remote_code=trust_remote_code, four_bit=options.mode == "qlora")
    model = apply_mode(model, ref.family, options)
    return parameter_report(model, ref.family)
