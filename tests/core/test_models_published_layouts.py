"""What the families that load their authors' own layouts (NVILA, LLaVA-Video) share: a LoRA adapter names the
published-layout checkpoint it was trained on, vt-quantize int8-dynamic of that layout answers, registry names
and uncached hub ids, the console scripts as `make <rq> MODEL=tiny-<family>` runs them, and (on a GPU with the
checkpoint in the local HF cache) the real model answering three clips. Each family's own pieces are tested in
test_models_nvila.py and test_models_llava_video.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from videotune.core import models
from videotune.core.io import InputError, read_jsonl, read_samples, write_jsonl
from videotune.core.schemas import Prediction
from videotune.infer.generate import GenerateConfig, run_generate
from videotune.prep.build import BuildOptions, build_examples

BIN = Path(sys.executable).parent
FAMILIES = ["nvila", "llava-video"]
# family -> (registry name, the published checkpoint's hub id)
PUBLISHED = {"nvila": ("nvila-lite-2b", "Efficient-Large-Model/NVILA-Lite-2B"),
             "llava-video": ("llava-video-7b", "lmms-lab/LLaVA-Video-7B-Qwen2")}
SPEC = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)


@pytest.fixture(scope="module")
def examples(gym_raw, tmp_path_factory):
    """4-frame temporal examples over the shared gym clips: 4 to train on, 3 to answer."""
    work = tmp_path_factory.mktemp("published-layouts")
    built, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw, BuildOptions("aqa", "temporal", 4, 10, 0))
    write_jsonl(work / "train.jsonl", built[:4])
    write_jsonl(work / "test.jsonl", built[4:7])
    return work


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_adapter_names_its_base_and_int8_dynamic_answers(family, examples, gym_raw, tmp_path):
    """vt-train sft --mode lora on the published layout: the adapter resolves to that checkpoint; vt-quantize
    int8-dynamic of the layout loads (torch.ao int8 layers) and answers through vt-infer generate."""
    from videotune.quantize.cli import QuantizeConfig, run_quantize
    from videotune.train.sft import SftConfig, run_sft

    corpus = (examples / "train.jsonl").read_text().splitlines()  # the examples' text trains the tokenizer
    tiny = models.build_tiny(family, tmp_path / f"tiny-{family}", corpus, spec=SPEC)
    run_sft(SftConfig(model=str(tiny), train_examples=examples / "train.jsonl", data_root=gym_raw, out=tmp_path / "lora",
                      mode="lora", lora_r=4, max_steps=1, batch_size=2, logging_steps=1))
    adapter = models.resolve(str(tmp_path / "lora/adapter"))
    assert (adapter.family.name, adapter.source, adapter.is_local) == (family, str(tiny), True)
    models.load(adapter)
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny, out=tmp_path / "q", min_int8_weights=0))
    model, _ = models.load(models.resolve(str(tmp_path / "q/model")))
    assert type(model.model.language_model.layers[0].mlp.up_proj).__module__.startswith("torch.ao")
    run_generate(GenerateConfig(model=str(tmp_path / "q/model"), examples=examples / "test.jsonl", data_root=gym_raw,
                                out=tmp_path / "gen", batch_size=3, max_new_tokens=4))
    predictions = read_jsonl(tmp_path / "gen/predictions.jsonl", Prediction)
    assert [p.status for p in predictions] == ["ok"] * 3


@pytest.mark.parametrize("family", FAMILIES)
def test_registry_name_and_an_uncached_hub_id(family, monkeypatch):
    name, hub_id = PUBLISHED[family]
    ref = models.resolve(name)
    assert (ref.family.name, ref.source) == (family, hub_id)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=f"cannot load model from {hub_id}"):
        models.load(ref)


@pytest.mark.gpu
@pytest.mark.parametrize("family", FAMILIES)
def test_real_checkpoint_answers_three_clips(family, examples, gym_raw, tmp_path):
    """The published checkpoint, when it is in the local HF cache: loaded by the family's own loader in bf16 on
    the GPU, it answers three gym clips in words (not checked for correctness: the clips are synthetic)."""
    from huggingface_hub import snapshot_download

    name, hub_id = PUBLISHED[family]
    try:
        snapshot_download(hub_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any miss of the local cache means: not here
        pytest.skip(f"{hub_id} is not in the local HF cache")
    run_generate(GenerateConfig(model=name, examples=examples / "test.jsonl", data_root=gym_raw, out=tmp_path / "gen",
                                batch_size=3, max_new_tokens=24, device="cuda", dtype="bfloat16"))
    predictions = read_jsonl(tmp_path / "gen/predictions.jsonl", Prediction)
    assert [p.status for p in predictions] == ["ok"] * 3
    assert all(any(c.isalpha() for c in p.prediction) for p in predictions)


@pytest.mark.slow  # eight console-script start-ups (torch + transformers imports each): about 2.5 minutes a family
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_variant_through_the_command_lines(family, examples, gym_raw, tmp_path):
    """Build the tiny variant, fine-tune it (LoRA, last block), quantize it, answer with both."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        done = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]

    tiny = tmp_path / f"tiny-{family}"
    run("vt-train", "tiny-model", "--family", family, "--corpus", examples / "train.jsonl", "--out", tiny,
        "--vocab-size", 400, "--text-hidden", 32, "--vision-hidden", 32)
    assert models.resolve(str(tiny)).family.name == family
    run("vt-train", "sft", "--model", tiny, "--train-examples", examples / "train.jsonl", "--data-root", gym_raw,
        "--out", tmp_path / "train", "--mode", "lora", "--last-blocks", "1", "--max-steps", 1, "--batch-size", 2)
    run("vt-quantize", "--method", "int8-dynamic", "--model", tiny, "--out", tmp_path / "q")
    for model, out in ((tmp_path / "train" / "model", "infer"), (tmp_path / "q" / "model", "infer-q")):
        run("vt-infer", "generate", "--model", model, "--examples", examples / "test.jsonl", "--data-root", gym_raw,
            "--out", tmp_path / out, "--max-new-tokens", 4)
        predictions = read_jsonl(tmp_path / out / "predictions.jsonl", Prediction)
        assert [p.status for p in predictions] == ["ok"] * 3
