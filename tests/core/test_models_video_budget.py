"""The per-clip pixel budget of the Qwen families (--video-max-pixels): qwen-vl-utils' resize rule against
hand-computed cases, the processor receiving frames of the budgeted size in training and inference, the
docs' table computed by the code, and the refusal for other families."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from videotune.core import models
from videotune.core.io import InputError, read_jsonl, read_samples, write_jsonl
from videotune.core.models.families import _qwen
from videotune.core.schemas import Prediction
from videotune.infer.generate import GenerateConfig, run_generate
from videotune.infer.profile import ProfileConfig, run_profile
from videotune.prep.build import BuildOptions, build_examples
from videotune.train.sft import SftConfig, run_sft

ROOT = Path(__file__).resolve().parents[2]
# the published Qwen2/2.5-VL video geometry: 28 px merged patches, 128 and 768 of them per frame
QWEN2 = {"factor": 28, "min_pixels": 128 * 28 * 28, "frame_cap": 768 * 28 * 28}
SPEC = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)


# --------------------------------------------------------------------------- the rule, by hand


@pytest.mark.parametrize(("n_frames", "expected"), [
    # 4096 tokens = 3,211,264 px over 8 patches: 401,408 px a frame; 480 -> 17 x 28, 640 -> 23 x 28 fit (306,544)
    (16, (476, 644)),
    # 16 patches: 200,704 px a frame; beta = sqrt(307,200 / 200,704) = 1.2372: 388.0 -> 13 x 28, 517.3 -> 18 x 28
    (32, (364, 504)),
    # an odd count rounds up to whole patches: 31 frames are 16 patches, as 32 frames
    (31, (364, 504)),
    # 17 patches: 188,898 px; beta = 1.2753: 376.4 -> 13 x 28, 501.9 -> 17 x 28
    (33, (364, 476)),
])
def test_budget_rule_by_hand(n_frames, expected):
    h, w = _qwen.budget_frame_size(480, 640, n_frames, 4096 * 28 * 28, **QWEN2)
    assert (h, w) == expected
    assert h % 28 == 0 and w % 28 == 0
    assert _qwen.temporal_patches(n_frames) * h * w <= 4096 * 28 * 28  # the budget holds
    assert abs(w / h - 640 / 480) < 0.1  # aspect ratio kept to within the 28 px rounding


def test_budget_rule_floor_ceiling_and_upscale():
    # a budget far below the floor: each frame gets 1.05 x 100,352 = 105,369 px; beta = 1.7075: 281.1 -> 280, 374.8 -> 364
    assert _qwen.budget_frame_pixels(8, 1000, QWEN2["min_pixels"], QWEN2["frame_cap"]) == 105369
    assert _qwen.budget_frame_size(480, 640, 8, 1000, **QWEN2) == (280, 364)
    # a budget far above the ceiling: capped at 768 merged patches (602,112 px) a frame
    assert _qwen.budget_frame_pixels(2, 10**9, QWEN2["min_pixels"], QWEN2["frame_cap"]) == 602112
    assert _qwen.budget_frame_size(1080, 1920, 2, 10**9, **QWEN2) == (560, 1008)  # beta = 1.8558 -> 582.0, 1034.6
    # a frame below the floor grows to it: 56 x 56 px, beta = sqrt(100,352 / 3,136) = 5.657 -> 316.8 -> 12 x 28
    assert _qwen.budget_frame_size(56, 56, 4, 10**7, **QWEN2) == (336, 336)
    # Qwen3-VL's 32 px merged patches: 2048 tokens over 4 patches leave 524,288 px, a 480 x 640 frame fits as is
    assert _qwen.budget_frame_size(480, 640, 8, 2048 * 32 * 32, 32, 128 * 32 * 32, 768 * 32 * 32) == (480, 640)
    with pytest.raises(InputError, match="aspect ratio"):
        _qwen.smart_resize(2, 1000, 28, 0, 10**6)


def test_budget_table_is_computed_and_documented():
    rows = _qwen.budget_table(28, 128 * 28 * 28, 768 * 28 * 28, 480, 640, [4096 * 28 * 28], [16, 32])
    assert rows == [
        {"budget_px": 3211264, "frames": 16, "height": 476, "width": 644, "tokens_per_frame": 17 * 23 // 2 + 1,
         "clip_tokens": 8 * 17 * 23},
        {"budget_px": 3211264, "frames": 32, "height": 364, "width": 504, "tokens_per_frame": 13 * 18 // 2,
         "clip_tokens": 16 * 13 * 18},
    ]
    readme = (ROOT / "tools" / "train" / "README.md").read_text()
    assert _qwen.budget_table_markdown() in readme  # the docs' table is the code's, not typed by hand


# --------------------------------------------------------------------------- through the processors and the tools


@pytest.fixture(scope="module")
def work(gym_raw, tmp_path_factory):
    """4-frame examples over the shared 64 px gym clips and tiny Qwen2-VL / Qwen3-VL models."""
    out = tmp_path_factory.mktemp("budget")
    built, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw, BuildOptions("aqa", "temporal", 4, 10, 0))
    write_jsonl(out / "train.jsonl", built[:2])
    write_jsonl(out / "test.jsonl", built[2:4])
    corpus = [m.content for e in built for m in e.messages]
    for family in ("qwen2-vl", "qwen3-vl"):
        models.build_tiny(family, out / f"tiny-{family}", corpus, seed=0, spec=SPEC)
    return out


class FramesSeen:
    """Records the frames each Qwen video processor call receives (shape [T, H, W, 3] per clip) and its do_resize."""

    def __init__(self, monkeypatch):
        from transformers import Qwen2VLVideoProcessor, Qwen3VLVideoProcessor

        self.calls: list[tuple[list[tuple[int, ...]], object]] = []
        for cls in (Qwen2VLVideoProcessor, Qwen3VLVideoProcessor):
            original = cls.__call__

            def spy(processor, videos=None, *args, _original=original, **kwargs):
                self.calls.append(([np.asarray(v).shape for v in videos], kwargs.get("do_resize")))
                return _original(processor, videos, *args, **kwargs)

            monkeypatch.setattr(cls, "__call__", spy)

    def shapes(self) -> set[tuple[int, ...]]:
        return {shape for shapes, _ in self.calls for shape in shapes}


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen3-vl"])
def test_encode_batch_feeds_the_budgeted_size(work, family, monkeypatch):
    # tiny geometry: 16 px merged patches, 64 px frames; 4 frames (2 patches) under 2048 px: 1024 px a frame = 32 x 32
    processor = models.FAMILIES[family].load_processor(str(work / f"tiny-{family}"))
    seen = FramesSeen(monkeypatch)
    clips = [np.random.default_rng(i).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8) for i in range(2)]
    times, durations = [[0.0, 0.5, 1.0, 1.5]] * 2, [2.0, 2.0]
    budgeted = models.encode_batch(processor, models.FAMILIES[family], ["a", "b"], clips, times, durations,
                                   video_max_pixels=2048)
    assert seen.shapes() == {(4, 32, 32, 3)} and seen.calls[-1][1] is False
    assert budgeted["video_grid_thw"].tolist() == [[2, 4, 4]] * 2  # 2 patches of 4 x 4 (8 px) patches
    plain = models.encode_batch(processor, models.FAMILIES[family], ["a", "b"], clips, times, durations)
    assert plain["video_grid_thw"].tolist() == [[2, 8, 8]] * 2
    assert models.FAMILIES[family].budget_frame(processor, 64, 64, 4, 2048) == (32, 32, 2)


def test_sft_and_generate_agree_under_the_budget(work, gym_raw, monkeypatch):
    """One training step and generation with --video-max-pixels: the processor gets 32 x 32 px frames in both,
    and run.json records the budget."""
    seen = FramesSeen(monkeypatch)
    tiny = work / "tiny-qwen2-vl"
    run_sft(SftConfig(model=str(tiny), train_examples=work / "train.jsonl", data_root=gym_raw, out=work / "sft",
                      max_steps=1, batch_size=2, logging_steps=1, video_max_pixels=2048))
    assert seen.shapes() == {(4, 32, 32, 3)}
    assert json.loads((work / "sft" / "run.json").read_text())["config"]["video_max_pixels"] == 2048

    seen.calls.clear()
    out = work / "generate"
    run_generate(GenerateConfig(model=str(work / "sft" / "model"), examples=work / "test.jsonl", data_root=gym_raw,
                                out=out, batch_size=2, max_new_tokens=4, device="cpu", video_max_pixels=2048))
    assert seen.shapes() == {(4, 32, 32, 3)} and {resize for _, resize in seen.calls} == {False}
    assert [p.status for p in read_jsonl(out / "predictions.jsonl", Prediction)] == ["ok", "ok"]
    assert json.loads((out / "run.json").read_text())["config"]["video_max_pixels"] == 2048
    with pytest.raises(InputError, match=re.escape("video_max_pixels 2048 -> 4096")):
        run_generate(GenerateConfig(model=str(work / "sft" / "model"), examples=work / "test.jsonl",
                                    data_root=gym_raw, out=out, max_new_tokens=4, device="cpu", video_max_pixels=4096))


def test_profile_reports_the_budgeted_tokens_per_frame(work, gym_raw):
    report = run_profile(ProfileConfig(model=str(work / "tiny-qwen2-vl"), examples=work / "test.jsonl",
                                       data_root=gym_raw, out=work / "profile", n_samples=1, warmup=0,
                                       max_new_tokens=2, device="cpu", video_max_pixels=2048))
    assert [(c.status, c.tokens_per_frame) for c in report.configs] == [("ok", 2)]  # 8 without the budget


def test_other_families_refuse_the_budget(tiny_model, gym_examples, gym_raw, tmp_path):
    with pytest.raises(InputError, match="the smolvlm2 family has no per-clip pixel budget.*qwen2-vl"):
        run_generate(GenerateConfig(model=str(tiny_model), examples=gym_examples, data_root=gym_raw,
                                    out=tmp_path / "gen", video_max_pixels=100_000))
    assert not (tmp_path / "gen" / "predictions.jsonl").exists()
    with pytest.raises(InputError, match="smolvlm2 family has no per-clip pixel budget"):
        run_sft(SftConfig(model=str(tiny_model), train_examples=gym_examples, data_root=gym_raw, out=tmp_path / "sft",
                          max_steps=1, video_max_pixels=100_000))
