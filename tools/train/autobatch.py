"""--auto-batch-size: the largest batch whose training step keeps peak GPU memory under a fraction.

The search doubles the batch size until a trial exceeds the budget (or runs out of memory, or
reaches the dataset size), then bisects between the last batch that fit and the first that did
not. A trial is one forward + backward on the longest examples, so the batch found also fits the
longest batch of the run; the optimizer's state (AdamW: two float32 moments per trainable
parameter), which a trial does not allocate, is added to the measured peak.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("videotune.train")


class OutOfMemory(Exception):
    """A trial batch did not fit."""


def search_batch_size(peak_bytes: Callable[[int], int], budget_bytes: int, max_batch: int) -> tuple[int, list[dict]]:
    """Largest b in [1, max_batch] with peak_bytes(b) <= budget_bytes, assuming memory grows with b.

    `peak_bytes(b)` runs one trial and returns its peak, or raises OutOfMemory. Returns the batch
    size (0 when even 1 does not fit) and every trial made, in order.
    """
    trials: list[dict] = []

    def fits(b: int) -> bool:
        try:
            peak = peak_bytes(b)
        except OutOfMemory:
            trials.append({"batch_size": b, "peak_bytes": None, "fits": False})
            return False
        ok = peak <= budget_bytes
        trials.append({"batch_size": b, "peak_bytes": int(peak), "fits": ok})
        return ok

    good, bad = 0, None
    b = 1
    while b <= max_batch:
        if not fits(b):
            bad = b
            break
        good = b
        if b == max_batch:
            return good, trials
        b = min(2 * b, max_batch)
    if good == 0:
        return 0, trials
    bad = bad if bad is not None else max_batch + 1
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good, trials


def cuda_peak_fn(model: Any, collator: Any, items: list, optimizer_state_bytes: int) -> Callable[[int], int]:
    """A trial function for search_batch_size: forward + backward of the b longest examples on CUDA."""
    import torch

    # the longest prompts and answers make the longest token sequences (frames are equal per run)
    order = sorted(range(len(items)), key=lambda i: -(len(items[i].example.target)
                                                      + len(items[i].example.messages[-2].content)))
    device = next(model.parameters()).device

    def peak(b: int) -> int:
        batch = collator([{"index": i} for i in order[:b]])
        batch.pop("sample_weight", None)
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            model(**batch, use_cache=False).loss.backward()
            torch.cuda.synchronize(device)
            return int(torch.cuda.max_memory_allocated(device)) + optimizer_state_bytes
        except torch.OutOfMemoryError as err:
            raise OutOfMemory(str(err)) from err
        finally:
            model.zero_grad(set_to_none=True)
            del batch
            torch.cuda.empty_cache()

    return peak


def auto_batch_size(model: Any, collator: Any, items: list, fraction: float) -> tuple[int, dict]:
    """Search on the current CUDA device; returns (batch size, record for run.json)."""
    import torch

    device = next(model.parameters()).device
    total = torch.cuda.get_device_properties(device).total_memory
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer_state = 2 * 4 * trainable  # AdamW exp_avg + exp_avg_sq in float32
    was_training = model.training
    model.train()
    batch, trials = search_batch_size(cuda_peak_fn(model, collator, items, optimizer_state),
                                      int(fraction * total), len(items))
    model.train(was_training)
    record = {"fraction": fraction, "device_total_bytes": int(total), "budget_bytes": int(fraction * total),
              "optimizer_state_bytes": optimizer_state, "batch_size": batch, "trials": trials}
    log.info("auto batch size: %d (peak under %.0f%% of %.1f GiB; %d trials)", batch, 100 * fraction,
             total / 2**30, len(trials))
    return batch, record
