"""Every model family beyond SmolVLM2: tiny variant built offline, loaded by path through the Auto
classes, prompts labelled on the answer only, exact frame times reaching the model, frame sizes, one
training step (full and LoRA) and greedy generation through the tools' own functions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from videotune.core import models
from videotune.core.io import InputError, read_jsonl, read_samples, write_jsonl
from videotune.core.schemas import Prediction
from videotune.infer.generate import GenerateConfig, run_generate
from videotune.infer.profile import ProfileConfig, run_profile
from videotune.prep.build import BuildOptions, build_examples
from videotune.train.sft import SftConfig, run_sft

BIN = Path(sys.executable).parent
FAMILIES = [f for f in models.tiny_families() if f != "smolvlm2"]  # qwen2-vl ... videollama3
CLASSES = {
    "qwen2-vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen2.5-vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen3-vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
    "llava-onevision": ("LlavaOnevisionForConditionalGeneration", "LlavaOnevisionProcessor",
                        "LlavaOnevisionVideoProcessor"),
    "videollama3": ("VideoLlama3ForConditionalGeneration", "VideoLlama3Processor", "VideoLlama3VideoProcessor"),
    "llava-video": ("LlavaVideoForConditionalGeneration", "LlavaVideoProcessor", "LlavaOnevisionVideoProcessor"),
    # NVILA feeds frames through its image processor, as NVILA's own inference does
    "nvila": ("NvilaForConditionalGeneration", "NvilaProcessor", "SiglipImageProcessor"),
    "mobile-videogpt": ("MobileVideoGPTQwenForCausalLM", "MobileVideoGPTProcessor", "MobileVideoGPTVideoProcessor"),
}
# Families whose SigLIP towers have position embeddings for one frame side only: tokens a 64 px frame adds to the
# sequence (LLaVA-OneVision: 8 x 8 patches pooled 2 x 2; LLaVA-Video: pooled 2 x 2 (average) with a newline per row;
# NVILA: merged 3 x 3 (side padded to 9) and a newline token); Mobile-VideoGPT's CLIP and VideoMamba: a context
# frame's 4 x 4 tokens plus its share of its chunk's 16 video tokens (8 frames a chunk)
FIXED_FRAME_TOKENS = {"llava-onevision": 16, "llava-video": 20, "nvila": 10, "mobile-videogpt": 18}
SPEC = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)
TARGETS = ["The subject is performing a Squat.", "The subject is performing a OHP. He performs it correctly."]


@pytest.fixture(scope="module")
def examples(gym_raw, tmp_path_factory):
    """4-frame temporal examples over the shared gym clips: 4 to train on, 2 to answer."""
    work = tmp_path_factory.mktemp("families")
    built, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw,
                              BuildOptions("aqa", "temporal", 4, 10, 0))
    write_jsonl(work / "train.jsonl", built[:4])
    write_jsonl(work / "test.jsonl", built[4:6])
    return work, [m.content for e in built for m in e.messages] + TARGETS


@pytest.fixture(scope="module", params=FAMILIES)
def tiny_dir(request, examples):
    """Each family built once, from the examples' text, in its own tmp dir named tiny-<family>."""
    work, corpus = examples
    return models.build_tiny(request.param, work / f"tiny-{request.param}", corpus, seed=0, spec=SPEC)


def _family(tiny_dir: Path) -> str:
    return tiny_dir.name.removeprefix("tiny-")


def _clips(n_frames: int, size: int = 64, count: int = 2):
    # distinct random frames: no two frames alike, so VideoLLaMA3's token compression keeps them all
    return [np.random.default_rng(i).integers(0, 255, (n_frames, size, size, 3), dtype=np.uint8) for i in range(count)]


def test_tiny_loads_by_path_like_a_checkpoint(tiny_dir):
    family = _family(tiny_dir)
    ref = models.resolve(str(tiny_dir))
    assert ref.family.name == family and ref.is_local
    # through the family's loading hooks: what `models.load` calls (NVILA and LLaVA-Video are saved in their
    # authors' layouts, which only their families read)
    model = ref.family.load_model(str(tiny_dir), torch.float32)
    processor = ref.family.load_processor(str(tiny_dir))
    frames = getattr(processor, "video_processor", None) or processor.image_processor
    assert (type(model).__name__, type(processor).__name__, type(frames).__name__) == CLASSES[family]
    assert ref.family.frame_size(processor) == SPEC.frame_size
    tok = processor.tokenizer
    # the end of the assistant turn is one token, and generation stops at it
    assert tok.convert_tokens_to_ids(ref.family.end_of_turn) == tok.eos_token_id == model.generation_config.eos_token_id
    # the family's module paths exist on the loaded model (freezing, parameter reports, LoRA)
    for path in (ref.family.vision_module, ref.family.projector_module, *ref.family.extra_projector_modules,
                 ref.family.decoder_layers):
        model.get_submodule(path)
    assert len(model.get_submodule(ref.family.decoder_layers)) == SPEC.text_layers
    # every projector parameter counts as projector (Qwen3-VL's DeepStack mergers too), never as vision
    from videotune.train.modes import find_parts

    parts = find_parts(model, ref.family)
    merger_like = [n for n, _ in model.named_parameters() if "merger" in n or "projector" in n or "connector" in n]
    assert merger_like and {parts.group(n) for n in merger_like} == {"projector"}


@pytest.mark.parametrize("n_frames", [3, 1])
def test_labels_cover_only_the_answer(tiny_dir, n_frames):
    """Odd and single-frame clips too: the processors (or `encode_batch` for Qwen3-VL) repeat the last frame."""
    ref = models.resolve(str(tiny_dir))
    model, processor = models.load(ref)
    times = [[0.25 * i for i in range(n_frames)]] * 2
    batch = models.encode_batch(processor, ref.family, ["question one", "a longer question two"], _clips(n_frames),
                                times, [2.0, 2.0], targets=TARGETS)
    tok = processor.tokenizer
    for row, target in enumerate(TARGETS):
        kept = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert tok.decode(kept) == ref.family.answer_prefix + target + ref.family.end_of_turn
        # everything before the answer is the prompt, masked out
        first = int((batch["labels"][row] != -100).nonzero()[0])
        assert tok.decode(batch["input_ids"][row, :first]).endswith("assistant\n")
    video_id = processor.video_token_id
    assert (batch["input_ids"] == video_id).sum() > 0
    assert not (batch["labels"] == video_id).any()
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_image_batches_label_only_the_answer(tiny_dir):
    ref = models.resolve(str(tiny_dir))
    model, processor = models.load(ref)
    images = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(2)]
    batch = models.encode_batch(processor, ref.family, ["what is shown", "and here"], [], [], [], targets=TARGETS,
                                images=images)
    tok = processor.tokenizer
    for row, target in enumerate(TARGETS):
        kept = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert tok.decode(kept) == ref.family.answer_prefix + target + ref.family.end_of_turn
    image_id = processor.image_token_id
    assert (batch["input_ids"] == image_id).sum() > 0 and not (batch["labels"] == image_id).any()
    assert torch.isfinite(model(**batch).loss)


def test_exact_timestamps_reach_the_model(tiny_dir):
    """Frame times that no frame rate rounds to: how each family receives them."""
    ref = models.resolve(str(tiny_dir))
    _, processor = models.load(ref)
    times = [0.0, 0.437, 1.311, 2.186]  # seconds; uneven on purpose
    batch = models.encode_batch(processor, ref.family, ["when?"], _clips(4, count=1), [times], [3.1])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    family = ref.family.name
    if family == "qwen3-vl":  # the mean time of each 2-frame temporal patch, to 0.1 s
        assert "<0.2 seconds>" in text and "<1.7 seconds>" in text
    elif family == "videollama3":  # every frame's own time
        assert all(f"Time {t:.1f}s:" in text for t in times)
    elif family == "qwen2.5-vl":  # seconds per temporal patch = 2 / (frames per second of the clip)
        assert batch["second_per_grid_ts"].tolist() == pytest.approx([2 / (4 / 3.1)], rel=1e-3)
    else:
        assert "seconds>" not in text and "Time " not in text


def test_set_frame_size_changes_the_tokens_per_frame(tiny_dir):
    ref = models.resolve(str(tiny_dir))
    model, processor = models.load(ref)
    if ref.family.name in FIXED_FRAME_TOKENS:
        with pytest.raises(InputError, match="position embeddings for 64 px"):
            ref.family.set_frame_size(processor, model.config, 32)
        assert ref.family.set_frame_size(processor, model.config, 64) == FIXED_FRAME_TOKENS[ref.family.name]
        return
    with pytest.raises(InputError, match="multiple of"):
        ref.family.set_frame_size(processor, model.config, 40)
    tokens = ref.family.set_frame_size(processor, model.config, 32)
    assert ref.family.frame_size(processor) == 32
    # 32 px / (8 px patches x 2 merge) = 2 x 2 tokens per frame; Qwen's 2-frame temporal patch shares them
    assert tokens == (2 if ref.family.name.startswith("qwen") else 4)
    batch = models.encode_batch(processor, ref.family, ["q"], _clips(4, size=32, count=1), [[0, 1, 2, 3]], [4.0])
    assert int((batch["input_ids"] == processor.video_token_id).sum()) == 4 * tokens
    assert torch.isfinite(model(**batch).logits).all()


@pytest.mark.parametrize("family", ["smolvlm2", "qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_token_merge_sets_the_tokens_per_frame(family, examples):
    """4 x 4 patches per token: a 64 px frame of 8 px patches is 2 x 2 tokens (Qwen: shared by 2 frames)."""
    work, corpus = examples
    spec = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400, token_merge=4)
    ref = models.resolve(str(models.build_tiny(family, work / f"merge4-{family}", corpus, seed=0, spec=spec)))
    model, processor = models.load(ref)
    tokens = ref.family.set_frame_size(processor, model.config, 64)
    assert tokens == (2 if family.startswith("qwen") else 4)
    with pytest.raises(InputError, match="multiple of"):
        ref.family.set_frame_size(processor, model.config, 48)  # 48 px is not a multiple of 8 px x 4
    batch = models.encode_batch(processor, ref.family, ["q"], _clips(4, count=1), [[0, 1, 2, 3]], [4.0],
                                targets=["a"])
    # SmolVLM2 places a frame's tokens as <image> tokens; Qwen as video tokens
    media_id = processor.video_token_id if family.startswith("qwen") else processor.image_token_id
    assert int((batch["input_ids"] == media_id).sum()) == 4 * tokens
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()  # the merger / pixel shuffle takes gradients at this merge


def test_batched_left_padded_generation_matches_one_by_one(tiny_dir):
    """Left padding must not move the answers: rotary (M-RoPE) positions skip the pad tokens."""
    ref = models.resolve(str(tiny_dir))
    model, processor = models.load(ref)
    model.eval()
    clips, texts = _clips(4), ["what is the exercise", "which body parts are wrong here"]
    times, durations = [[0.0, 0.5, 1.0, 1.5]] * 2, [2.0, 2.0]

    def generate(rows):
        inputs = models.encode_batch(processor, ref.family, [texts[r] for r in rows], [clips[r] for r in rows],
                                     [times[r] for r in rows], [durations[r] for r in rows], padding_side="left")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False, eos_token_id=None,
                                 pad_token_id=processor.tokenizer.pad_token_id)
        return out[:, inputs["input_ids"].shape[1]:].tolist()

    assert generate([0, 1]) == generate([0]) + generate([1])


def _state(path):
    ref = models.resolve(str(path))
    return ref.family.load_model(ref.source, torch.float32).state_dict()


def test_one_training_step_then_generate(tiny_dir, gym_raw):
    """vt-train sft (one full step) changes the weights; vt-infer generate answers 2 clips with it."""
    work = tiny_dir.parent
    out = work / f"sft-{tiny_dir.name}"
    summary = run_sft(SftConfig(model=str(tiny_dir), train_examples=work / "train.jsonl", data_root=gym_raw, out=out,
                                max_steps=1, batch_size=2, lr=1e-2, logging_steps=1))
    assert summary["global_step"] == 1 and np.isfinite(summary["final_train_loss"])
    before, after = _state(tiny_dir), _state(out / "model")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    family = models.resolve(str(tiny_dir)).family
    assert any(k.startswith(family.decoder_layers) for k in changed)
    assert any(k.startswith(family.vision_module) for k in changed)

    pred_dir = work / f"pred-{tiny_dir.name}"
    run_generate(GenerateConfig(model=str(out / "model"), examples=work / "test.jsonl", data_root=gym_raw,
                                out=pred_dir, batch_size=2, max_new_tokens=8, device="cpu"))
    predictions = read_jsonl(pred_dir / "predictions.jsonl", Prediction)
    assert len(predictions) == 2 and all(p.status == "ok" and 1 <= p.new_tokens <= 8 for p in predictions)


def test_profile_sweeps_resolutions(tiny_dir, gym_raw):
    """vt-infer profile unchanged: latency per resolution, tokens per frame from the family's geometry."""
    work = tiny_dir.parent
    family = models.resolve(str(tiny_dir)).family.name
    resolutions = [64] if family in FIXED_FRAME_TOKENS else [32, 64]
    report = run_profile(ProfileConfig(model=str(tiny_dir), examples=work / "test.jsonl", data_root=gym_raw,
                                       out=work / f"profile-{tiny_dir.name}", n_samples=2, warmup=0,
                                       batch_sizes=[1, 2], resolutions=resolutions, max_new_tokens=3, device="cpu"))
    assert [c.status for c in report.configs] == ["ok"] * 2 * len(resolutions)
    per_frame = {c.resolution_px: c.tokens_per_frame for c in report.configs}
    fixed = {name: {64: tokens} for name, tokens in FIXED_FRAME_TOKENS.items()}
    expected = {**fixed, "videollama3": {32: 4, 64: 16}}.get(family, {32: 2, 64: 8})
    assert per_frame == expected


def test_lora_adapts_only_the_language_model(tiny_dir, gym_raw):
    work = tiny_dir.parent
    out = work / f"lora-{tiny_dir.name}"
    run_sft(SftConfig(model=str(tiny_dir), train_examples=work / "train.jsonl", data_root=gym_raw, out=out, mode="lora",
                      lora_r=4, max_steps=1, batch_size=2, lr=5e-2, logging_steps=1))
    family = models.resolve(str(tiny_dir)).family
    before, after = _state(tiny_dir), _state(out / "model")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed
    for key in changed:
        assert key.startswith(family.decoder_layers + "."), f"{key} changed outside the language model"
        assert key.rsplit(".", 2)[-2] in family.lora_target_modules, key
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4


def test_unknown_tiny_family_and_hub_ids(tmp_path):
    with pytest.raises(InputError, match="no tiny variant"):
        models.build_tiny("internvl", tmp_path, ["text"])
    with pytest.raises(InputError, match="multiple of token merge x patch size = 2 x 8 = 16 px"):
        models.build_tiny("qwen2-vl", tmp_path, ["text"], spec=models.TinySpec(frame_size=72))
    with pytest.raises(InputError, match="tiny-llava-onevision merges 2 x 2 patches per token; .* built for: "
                                         "smolvlm2, qwen2-vl, qwen2.5-vl, qwen3-vl"):
        models.build_tiny("llava-onevision", tmp_path, ["text"], spec=models.TinySpec(token_merge=4))
    assert models.resolve("qwen2-vl-2b").source == "Qwen/Qwen2-VL-2B-Instruct"
    assert models.resolve("llava-onevision-0.5b").family.name == "llava-onevision"
    assert models.resolve("Qwen/Qwen3-VL-4B-Instruct").family.name == "qwen3-vl"
    with pytest.raises(InputError, match="vt-train tiny-model --family qwen2.5-vl"):
        models.resolve("tiny-qwen2.5-vl")


@pytest.mark.slow  # three console-script start-ups (torch + transformers imports each): about 70 s on 2 cores
def test_qwen2_vl_through_the_command_lines(examples, gym_raw, tmp_path):
    """The CLIs end to end, as `make rq_all MODELS="... tiny-qwen2-vl"` runs them: build, train, answer."""
    work, _ = examples
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        done = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]

    tiny_dir = tmp_path / "tiny-qwen2-vl"
    run("vt-train", "tiny-model", "--family", "qwen2-vl", "--corpus", work / "train.jsonl", "--out", tiny_dir,
        "--vocab-size", 400, "--text-hidden", 32, "--vision-hidden", 32)
    assert models.resolve(str(tiny_dir)).family.name == "qwen2-vl"
    assert json.loads((tiny_dir / "run.json").read_text())["config"]["family"] == "qwen2-vl"
    run("vt-train", "sft", "--model", tiny_dir, "--train-examples", work / "train.jsonl", "--data-root", gym_raw,
        "--out", tmp_path / "train", "--max-steps", 1, "--batch-size", 2)
    run("vt-infer", "generate", "--model", tmp_path / "train" / "model", "--examples", work / "test.jsonl",
        "--data-root", gym_raw, "--out", tmp_path / "infer", "--max-new-tokens", 4)
    predictions = read_jsonl(tmp_path / "infer" / "predictions.jsonl", Prediction)
    assert [p.status for p in predictions] == ["ok", "ok"]


def test_frame_sides_of_real_checkpoint_processors(tiny_dir):
    """Real checkpoints' processors allow up to 12.8 Mpx per image: frames are decoded at qwen-vl-utils'
    per-frame video ceiling instead (768 tokens), and at SigLIP's 384 px for LLaVA-OneVision."""
    from transformers import (
        LlavaOnevisionVideoProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLVideoProcessor,
    )

    family = _family(tiny_dir)
    real = {  # the video processors as the hub checkpoints configure them
        "qwen2-vl": (Qwen2VLVideoProcessor(min_pixels=3136, max_pixels=12845056), 756),  # 27 x 28 px
        "qwen2.5-vl": (Qwen2VLVideoProcessor(min_pixels=3136, max_pixels=12845056), 756),
        "qwen3-vl": (Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 25165824}), 864),  # 27 x 32
        "llava-onevision": (LlavaOnevisionVideoProcessor(), 384),
    }
    if family not in real:
        pytest.skip("no published transformers-format video processor settings to compare with")
    processor = AutoProcessor.from_pretrained(tiny_dir)
    processor.video_processor, side = real[family]
    geometry = models.FAMILIES[family]
    assert geometry.frame_size(processor) == side
    if family.startswith("qwen"):
        processor.image_processor = Qwen2VLImageProcessor()
        model_config = AutoModelForImageTextToText.from_pretrained(tiny_dir).config
        factor = 28 if family != "qwen3-vl" else 32
        assert geometry.set_frame_size(processor, model_config, 8 * factor) == 32  # 8 x 8 merged tokens per 2 frames
        assert geometry.frame_size(processor) == 8 * factor
