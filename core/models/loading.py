"""One loader for every checkpoint videotune meets: plain, LoRA/QLoRA adapters, 4-bit bases, int8 and GPTQ.

- plain weights (safetensors, any dtype) and torchao's int8/int4 weight-only checkpoints: transformers
  rebuilds these itself (torchao's through config.json's `quantization_config`);
- torch.ao dynamic int8 and GPTQModel checkpoints: through their `videotune.json` (see quantized.py);
- a PEFT adapter directory (vt-train sft's `adapter/` after --mode lora or qlora): its base model, then the
  adapter on top, merged for inference unless the base is loaded in 4 bits;
- `four_bit=True`: the language model in bitsandbytes NF4, the base that QLoRA trains adapters on (CUDA).
"""

from __future__ import annotations

from typing import Any

from videotune.core.io import InputError
from videotune.core.models.checkpoint import read_quantization
from videotune.core.models.family import ModelRef
from videotune.core.models.quantized import load_dynamic_int8, load_gptq


def load(ref: ModelRef, dtype: str = "float32", trust_remote_code: bool = False, device: str = "cpu",
         four_bit: bool = False, merge_adapter: bool = True):
    """(model, processor) of `ref`. `trust_remote_code` is opt-in: it runs code shipped with the checkpoint."""
    import torch

    quantization = read_quantization(ref.source) if ref.is_local else None
    torch_dtype = getattr(torch, dtype) if dtype != "auto" else "auto"
    try:
        processor = ref.family.load_processor(ref.source, trust_remote_code=trust_remote_code)
        if quantization is not None and quantization.method == "int8-dynamic":
            if dtype not in ("float32", "auto") or not str(device).startswith("cpu"):
                raise InputError(
                    f"{ref.source}: an int8-dynamic model runs in float32 on the CPU only "
                    f"(torch.ao's quantized kernels are CPU ones); got dtype {dtype}, device {device}"
                )
            model = load_dynamic_int8(ref.family, ref.source, trust_remote_code=trust_remote_code)
        elif quantization is not None and quantization.method == "gptq":
            model = load_gptq(ref.source, device=device, trust_remote_code=trust_remote_code)
        elif four_bit:
            model = _load_four_bit(ref, trust_remote_code)
        else:
            model = ref.family.load_model(ref.source, torch_dtype, trust_remote_code=trust_remote_code).to(device)
    except OSError as err:
        where = "directory" if ref.is_local else "hub id (is the hub reachable, or the model cached?)"
        raise InputError(f"cannot load model from {ref.source} ({where}): {err}") from err
    if ref.adapter is not None:
        model = _with_adapter(model, ref.adapter, merge=merge_adapter and not four_bit)
    return model, processor


def _load_four_bit(ref: ModelRef, trust_remote_code: bool):
    """The language model in 4-bit NF4 (bitsandbytes, CUDA only). The vision tower and projector stay in
    bfloat16: they are small, and quantizing them costs accuracy for little memory."""
    import torch

    if not torch.cuda.is_available():
        raise InputError("--mode qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels); use --mode lora on a CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise InputError("--mode qlora needs bitsandbytes: pip install 'videotune[qlora]' on a CUDA machine") from err
    from transformers import BitsAndBytesConfig

    family = ref.family
    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=[path.rsplit(".", 1)[-1] for path in (
            family.vision_module, *family.extra_vision_modules, family.projector_module, *family.extra_projector_modules)]
        + ["lm_head"],
    )
    return family.load_model(ref.source, torch.bfloat16, trust_remote_code=trust_remote_code, quantization_config=quant,
                             device_map={"": 0})


def _with_adapter(model: Any, adapter_dir: str, merge: bool):
    try:
        from peft import PeftModel
    except ImportError as err:
        raise InputError(f"{adapter_dir} is a PEFT adapter: loading it needs peft (pip install 'videotune[train]')") from err
    try:
        wrapped = PeftModel.from_pretrained(model, adapter_dir)
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{adapter_dir}: cannot load the adapter onto its base model ({err})") from err
    return wrapped.merge_and_unload() if merge else wrapped


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
