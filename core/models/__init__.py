"""The model layer: families, loading, prompts and batches, generation, checkpoint metadata, tiny variants.

- family.py      what a family is (`Family`), the registry (`FAMILIES`, `register`) and `resolve`
- families/      one file per family: its geometry, how frames enter its processor, its tiny builder
- loading.py     `load`: plain, LoRA/QLoRA adapters, 4-bit bases, int8-dynamic, torchao, GPTQ
- quantized.py   the int8-dynamic and GPTQ formats transformers cannot rebuild alone
- encoding.py    `encode_batch`: prompts with frames and their exact times, loss labels
- generation.py  `generate`: the one greedy generation path every tool uses
- checkpoint.py  `videotune.json` (`CheckpointMeta`) and checkpoint sizes
- tiny.py        `build_tiny` / `build_reference`: random-weight models built offline

Tools import this package (`from videotune.core import models`) and use the names below.
"""

from videotune.core.models import families  # noqa: F401 - registers every family
from videotune.core.models.checkpoint import (
    CHECKPOINT_FILE,
    FLOAT_METHODS,
    CheckpointMeta,
    QuantizationMeta,
    dir_bytes,
    quantization_summary,
    read_checkpoint_meta,
    read_quantization,
    weights_bytes,
    write_checkpoint_meta,
)
from videotune.core.models.encoding import encode_batch, encode_image_batch
from videotune.core.models.family import (
    FAMILIES,
    LM_PROJECTIONS,
    VIDEO_MAX_PIXELS_DOC,
    Family,
    ModelRef,
    register,
    resolve,
)
from videotune.core.models.generation import Generation, generate, prepare_inputs, stop_token_ids
from videotune.core.models.loading import count_parameters, load
from videotune.core.models.quantized import (
    DYNAMIC_INT8_MIN_WEIGHTS,
    DYNAMIC_INT8_WEIGHTS,
    configure_gptqmodel,
    dynamic_int8_state_dict,
    quantize_dynamic_int8,
)
from videotune.core.models.tiny import (
    TinySpec,
    build_reference,
    build_tiny,
    reference_archs,
    tiny_families,
    train_tokenizer,
)

__all__ = [
    "CHECKPOINT_FILE", "DYNAMIC_INT8_MIN_WEIGHTS", "DYNAMIC_INT8_WEIGHTS", "FAMILIES", "FLOAT_METHODS",
    "LM_PROJECTIONS", "CheckpointMeta", "Family", "Generation", "ModelRef", "QuantizationMeta", "TinySpec",
    "build_reference", "build_tiny", "configure_gptqmodel", "count_parameters", "dir_bytes", "dynamic_int8_state_dict",
    "encode_batch", "encode_image_batch", "generate", "load", "prepare_inputs", "quantization_summary",
    "quantize_dynamic_int8", "read_checkpoint_meta", "read_quantization", "reference_archs", "register", "resolve",
    "stop_token_ids", "tiny_families", "train_tokenizer", "VIDEO_MAX_PIXELS_DOC", "weights_bytes",
    "write_checkpoint_meta",
]
