"""The model layer's shared parts: the registry, checkpoint metadata, adapters, the one generation path,
and frames that always match their prompt."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from videotune.core import models
from videotune.core.io import InputError, read_jsonl
from videotune.core.schemas import Example, Prediction, Reject
from videotune.core.video import (
    SamplingSpec,
    check_frames_restatable,
    restate_frames,
    sample_frames,
    time_instruction,
    with_sampled_frames,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- registry


def test_a_family_registered_from_its_own_file_resolves_by_model_type(tmp_path):
    @dataclass(frozen=True)
    class Toy(models.Family):
        def frame_size(self, processor):
            return 32

        def set_frame_size(self, processor, model_config, size):
            return 16

    toy = models.register(Toy(name="toy", model_types=("toy_vlm",), hub_ids={"toy-1b": "org/Toy-1B"}, end_of_turn="<eot>"))
    try:
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy_vlm"}))
        assert models.resolve(str(tmp_path)).family is toy
        assert models.resolve("toy-1b").source == "org/Toy-1B"
        assert "toy" not in models.tiny_families()  # no tiny builder of its own
        with pytest.raises(ValueError, match="registered twice"):
            models.register(toy)
    finally:
        del models.FAMILIES["toy"]


def test_a_corrupt_config_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "config.json"))):
        models.resolve(str(tmp_path))


# --------------------------------------------------------------------------- videotune.json


def test_checkpoint_meta_round_trip_and_refusals(tmp_path):
    meta = models.CheckpointMeta(base_model="smolvlm2-256m", mode="lora",
                                 quantization=models.QuantizationMeta(method="int8-dynamic", min_int8_weights=0, backend="x"))
    path = models.write_checkpoint_meta(tmp_path, meta)
    assert path.name == models.CHECKPOINT_FILE
    again = models.read_checkpoint_meta(tmp_path)
    assert again == meta and again.quantization.backend == "x"  # method details ride along
    assert models.read_checkpoint_meta(tmp_path / "nowhere") is None
    for bad, message in (({"mode": "half"}, r"mode: Input should be"), ({"colour": 1}, r"colour: Extra inputs"),
                         ({"quantization": {"method": "int3"}}, r"quantization\.method")):
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=re.escape(str(path)) + ".*" + message):
            models.read_checkpoint_meta(tmp_path)


# --------------------------------------------------------------------------- adapters


@pytest.mark.slow
def test_a_lora_adapter_directory_loads_onto_its_base(tiny_model, gym_examples, gym_raw, tmp_path):
    from videotune.train.sft import SftConfig, run_sft

    run_sft(SftConfig(model=str(tiny_model), train_examples=gym_examples, data_root=gym_raw, out=tmp_path / "run", mode="lora",
                      epochs=1, batch_size=4, lr=1e-2, lora_r=4))
    ref = models.resolve(str(tmp_path / "run/adapter"))
    assert ref.adapter == str(tmp_path / "run/adapter") and ref.source == str(tiny_model) and ref.family.name == "smolvlm2"
    merged, _ = models.load(ref)
    saved, _ = models.load(models.resolve(str(tmp_path / "run/model")))
    assert models.read_checkpoint_meta(tmp_path / "run/model") == models.CheckpointMeta(base_model=str(tiny_model), mode="lora")
    saved_state = saved.state_dict()
    for name, value in merged.state_dict().items():
        assert torch.allclose(value, saved_state[name], atol=1e-6), name
    base, _ = models.load(models.resolve(str(tiny_model)))
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in merged.state_dict().items())  # the adapter changed it


def test_an_adapter_without_a_base_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(InputError, match="no base_model_name_or_path"):
        models.resolve(str(tmp_path))


# --------------------------------------------------------------------------- one generation path


def test_no_tool_generates_on_its_own():
    """Every generation goes through core.models.generate: no tool calls a model's generate() itself."""
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in sorted((REPO / "tools").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\.generate\(", line)
                 and "models.generate(" not in line]
    assert offenders == []


def test_generate_stops_at_the_end_of_turn_and_matches_one_by_one(tiny_model, gym_examples, gym_raw):
    ref = models.resolve(str(tiny_model))
    model, processor = models.load(ref)
    examples = read_jsonl(gym_examples, Example)[:3]
    clips = [sample_frames(gym_raw / e.media, SamplingSpec(n_frames=4, size=64)) for e in examples]
    stops = models.stop_token_ids(processor.tokenizer, ref.family)
    assert processor.tokenizer.convert_tokens_to_ids("<end_of_utterance>") in stops

    def answer(rows):
        inputs = models.encode_batch(processor, ref.family, [examples[r].messages[-2].content for r in rows],
                                     [clips[r].frames for r in rows], [clips[r].timestamps_s for r in rows],
                                     [clips[r].duration_s for r in rows], padding_side="left")
        return models.generate(model, processor.tokenizer, inputs, max_new_tokens=6, stop_ids=stops, logprobs=True)

    batch = answer([0, 1, 2])
    assert batch.prefill_s > 0 and batch.decode_s >= 0 and batch.prompt_tokens > 0
    for row in range(3):
        single = answer([row])
        assert single.tokens[0] == batch.tokens[row] and single.texts[0] == batch.texts[row]
        tokens = batch.tokens[row]
        assert 1 <= len(tokens) <= 6 and not set(tokens[:-1]) & set(stops)  # cut at the first stop, kept
        assert batch.mean_logprobs[row] is not None and batch.mean_logprobs[row] <= 0
        assert batch.texts[row] == processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    fixed = models.generate(model, processor.tokenizer,
                            models.encode_batch(processor, ref.family, ["q"], [clips[0].frames], [clips[0].timestamps_s],
                                                [clips[0].duration_s], padding_side="left"),
                            max_new_tokens=5, min_new_tokens=5, stop_ids=stops)
    assert fixed.new_tokens == [5]


def test_bf16_models_get_bf16_pixels(tiny_model):
    model, _ = models.load(models.resolve(str(tiny_model)), dtype="bfloat16")
    inputs = models.prepare_inputs(model, {"input_ids": torch.ones(1, 3, dtype=torch.long),
                                           "pixel_values": torch.zeros(1, 2, 3, 8, 8)})
    assert inputs["pixel_values"].dtype == torch.bfloat16 and inputs["input_ids"].dtype == torch.long


# --------------------------------------------------------------------------- frames and prompt agree


def _stated(prompt: str) -> tuple[int, list[float]]:
    """The frame count and times a prompt's time sentence states."""
    count = int(re.search(r"and (\d+) frames? (?:are|is) uniformly sampled", prompt).group(1))
    times = [float(t) for t in re.findall(r"(\d+\.\d\d)s", prompt.split("located at", 1)[1])]
    return count, times


def _agrees(prompt: str, timestamps: list[float]) -> bool:
    count, times = _stated(prompt)
    return count == len(timestamps) and times == [round(t, 2) for t in timestamps]


def test_restating_frames_rewrites_the_time_sentence_or_refuses(gym_examples, gym_raw):
    example = read_jsonl(gym_examples, Example)[0]
    assert restate_frames(example, example.frames.timestamps_s) is example  # as built: untouched
    two = sample_frames(gym_raw / example.media, SamplingSpec(n_frames=2))
    restated = with_sampled_frames(example, two)
    assert restated.frames.n == 2 and restated.frames.timestamps_s == two.timestamps_s
    assert time_instruction(example.meta["duration_s"], two.timestamps_s) in restated.messages[0].content
    assert _agrees(restated.messages[0].content, two.timestamps_s)
    assert restated.messages[0].content.split("\n", 1)[1] == example.messages[0].content.split("\n", 1)[1]  # the rest kept
    untimed = example.model_copy(update={"messages": [example.messages[0].model_copy(update={"content": "What is shown?"}),
                                                      example.messages[1]]})
    with pytest.raises(InputError, match=f"example {re.escape(example.id)}: its prompt does not state its 4 frames"):
        with_sampled_frames(untimed, two)
    check_frames_restatable([example, untimed], 4, gym_examples)  # the count as built: nothing to restate
    with pytest.raises(InputError, match=rf"{re.escape(str(gym_examples))}: --frames 2: 1 examples .*{re.escape(untimed.id)}"):
        check_frames_restatable([example, untimed], 2, gym_examples)


def test_generate_with_fewer_frames_states_them(tiny_model, gym_examples, gym_raw, tmp_path):
    """`vt-infer generate --frames 2` on examples built with 4 frames records prompts that state 2 frames and
    their times: the frames the model got."""
    from videotune.infer.generate import GenerateConfig, run_generate

    run_generate(GenerateConfig(model=str(tiny_model), examples=gym_examples, data_root=gym_raw, out=tmp_path / "g",
                                frames=2, limit=3, max_new_tokens=4))
    examples = {e.id: e for e in read_jsonl(gym_examples, Example)}
    for prediction in read_jsonl(tmp_path / "g/predictions.jsonl", Prediction):
        assert prediction.status == "ok"
        example = examples[prediction.id]
        two = sample_frames(gym_raw / example.media, SamplingSpec(n_frames=2))
        assert _agrees(prediction.prompt, two.timestamps_s), prediction.prompt
        assert not _agrees(prediction.prompt, example.frames.timestamps_s)


def test_generate_refuses_frames_it_cannot_state_before_loading(gym_examples, gym_raw, tmp_path):
    from videotune.core.io import write_jsonl
    from videotune.infer.generate import GenerateConfig, run_generate

    example = read_jsonl(gym_examples, Example)[0]
    untimed = example.model_copy(update={"messages": [example.messages[0].model_copy(update={"content": "What?"}),
                                                      example.messages[1]]})
    write_jsonl(tmp_path / "untimed.jsonl", [untimed])
    # the model does not exist: the refusal comes first
    with pytest.raises(InputError, match="1 of 1 records refused before loading the model: .*--frames 2: its prompt does not"):
        run_generate(GenerateConfig(model=str(tmp_path / "no-model"), examples=tmp_path / "untimed.jsonl",
                                    data_root=gym_raw, out=tmp_path / "g", frames=2))
    assert not (tmp_path / "g/predictions.jsonl").exists()
    assert "--frames 2" in read_jsonl(tmp_path / "g/rejects.jsonl", Reject)[0].reason


def test_training_items_state_their_frames(tiny_model, gym_examples, gym_raw, tmp_path):
    """What the collator feeds the model: every prompt states exactly the frames decoded for it."""
    from videotune.core.video import FrameCache
    from videotune.train.data import load_decoded

    for n_frames in (None, 2, 6):
        items = load_decoded(gym_examples, gym_raw, 64, FrameCache(tmp_path / "cache"), n_frames)
        for item in items:
            assert len(item.frames) == (n_frames or 4)
            assert _agrees(item.example.messages[-2].content, item.timestamps_s), item.example.messages[-2].content


def test_importing_the_model_layer_loads_no_torch():
    """Every tool imports the model layer at start (and `--help` runs it): the families' torch code loads only when
    a model is built or loaded."""
    import subprocess
    import sys

    code = "import sys; from videotune.core import models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
