"""Trainer callbacks of vt-train: training progress, and the settings each checkpoint was made with."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from videotune.core.io import atomic_write_text
from videotune.core.progress import Progress

log = logging.getLogger("videotune.train")

# Written into every checkpoint-N folder: what `--resume` compares the new run's settings with.
SETTINGS_FILE = "videotune_settings.json"


class TrainProgress(TrainerCallback):
    """Optimizer steps done of the total, time left and the last training loss: a rich bar on a
    terminal, a plain line every `log_every_s` seconds otherwise, and a line per evaluation.

    It replaces the trainer's PrinterCallback (a raw dict per log) in the process that owns the
    terminal; the other processes of a distributed launch show nothing.
    """

    def __init__(self, log_every_s: float = 10.0):
        self.log_every_s = log_every_s
        self.progress: Progress | None = None

    @staticmethod
    def install(trainer: Any, log_every_s: float = 10.0) -> TrainProgress:
        trainer.remove_callback(PrinterCallback)
        callback = TrainProgress(log_every_s)
        trainer.add_callback(callback)
        return callback

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress = Progress("train", state.max_steps, self.log_every_s, done=state.global_step).__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None and state.global_step > self.progress.done:
            self.progress.advance(state.global_step - self.progress.done)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        if "loss" in logs:
            self.progress.set_status(f"loss {float(logs['loss']):.4f}")
        if "eval_loss" in logs:
            log.info("epoch %g (step %d/%d): val loss %.4f", round(state.epoch or 0.0, 2), state.global_step,
                     state.max_steps, float(logs["eval_loss"]))

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None


class SettingsInCheckpoints(TrainerCallback):
    """Writes `settings` (the run's resolved config and input hashes) into each checkpoint it saves,
    so that a later `--resume` can refuse settings that differ from the ones the steps were made with."""

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                atomic_write_text(folder / SETTINGS_FILE, json.dumps(self.settings, indent=2, default=str) + "\n")


def read_settings(checkpoint: Path) -> dict[str, Any] | None:
    """The settings a checkpoint was saved with; None for a checkpoint saved without them."""
    path = checkpoint / SETTINGS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
