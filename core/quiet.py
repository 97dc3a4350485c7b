"""Silence library output that a user of the tools cannot act on.

Called once when a command starts, before torch or transformers are imported. What goes:
- torch's `_pytree` warnings about Enum subclasses that torchao registers (a deprecation
  between two libraries, printed twice on every command that imports torchao);
- transformers' and huggingface_hub's tqdm bars ("Loading weights", "Writing model shards"):
  the tools show their own progress;
- DataLoader's "'pin_memory' ... no accelerator" warning, printed at every evaluation on a CPU;
- transformers' FutureWarning that peft's `is_gradient_checkpointing` call is deprecated (LoRA runs);
- the trainer's "mtime may not be reliable on this filesystem" notice (it sorts checkpoints by
  number instead, which is what a run needs).
Errors from the same sources still show. Set VT_VERBOSE_LIBRARIES=1 to keep all of it.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

QUIET_LOGGERS = ("torch.utils._pytree", "transformers.trainer_utils")


def quiet_libraries() -> None:
    if os.environ.get("VT_VERBOSE_LIBRARIES", "") not in ("", "0"):
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*'pin_memory' argument is set as true but no accelerator",
                            category=UserWarning)
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # Read once when huggingface_hub is imported (transformers asks it whether bars are on);
    # a user who set it either way keeps their choice.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"].upper() not in ("1", "ON", "YES", "TRUE"):
        return
    if "huggingface_hub" in sys.modules:  # already imported: the variable came too late
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
