"""LLaVA-Video: the video path (pooling, newline placement, token counts) against hand computations and against
transformers' LLaVA-OneVision, LLaVA-NeXT's key map at LLaVA-Video-7B-Qwen2's real sizes, the processor built from
what the checkpoint ships, and the tiny variant through the loader real checkpoints go through. The generic
family tests run over it in test_models_families.py; LoRA adapters, int8-dynamic, the console scripts and the
real checkpoint on a GPU in test_models_published_layouts.py."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from videotune.core import models
from videotune.core.io import InputError
from videotune.core.models.families import llava_video
from videotune.core.models.families._llava_video_model import (
    LlavaVideoConfig,
    LlavaVideoForConditionalGeneration,
    frame_tokens,
    place_newlines,
    pool_frames,
)

SPEC = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)
CORPUS = ["The subject is performing a squat. He performs it correctly.", "what is the exercise", "yes no"] * 20

# LLaVA-Video-7B-Qwen2's parts: Qwen2-7B's architecture (untied head) and SigLIP so400m-patch14-384 without its last
# layer (LLaVA-NeXT deletes it) and without the pooling head.
QWEN2_7B = {"model_type": "qwen2", "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
            "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False}
SIGLIP_384 = {"model_type": "siglip_vision_model", **llava_video.SIGLIP_TOWERS["google/siglip-so400m-patch14-384"],
              "num_hidden_layers": 26, "vision_use_head": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return models.build_tiny("llava-video", tmp_path_factory.mktemp("llava-video") / "tiny-llava-video", CORPUS, seed=0,
                             spec=SPEC)


def test_pooling_worked_by_hand():
    grid = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)  # one frame, 4 x 4 patches, values 0..15
    assert pool_frames(grid, "average", 2)[0, ..., 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert pool_frames(grid, "max", 2)[0, ..., 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    # bilinear to half size samples the middle of each 2 x 2 window: the window means
    assert pool_frames(grid, "bilinear", 2)[0, ..., 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    # an odd side: average drops the last row and column, bilinear rounds up and samples rows/columns 0.25 and 1.75
    # of value 3 r + c (linear, so interpolation is exact)
    odd = torch.arange(9, dtype=torch.float32).reshape(1, 9, 1)
    assert pool_frames(odd, "average", 2)[0, ..., 0].tolist() == [[2.0]]
    assert pool_frames(odd, "bilinear", 2)[0, ..., 0].tolist() == [[1.0, 2.5], [5.5, 7.0]]


def test_newline_placement_worked_by_hand():
    frames = torch.tensor([[[[1.0], [2.0]], [[3.0], [4.0]]], [[[5.0], [6.0]], [[7.0], [8.0]]]])  # 2 frames of 2 x 2
    newline = torch.tensor([9.0])
    flat = {p: place_newlines(frames, newline, p)[:, 0].tolist() for p in ("grid", "frame", "one_token", "no_token")}
    assert flat == {"grid": [1, 2, 9, 3, 4, 9, 5, 6, 9, 7, 8, 9], "frame": [1, 2, 3, 4, 9, 5, 6, 7, 8, 9],
                    "one_token": [1, 2, 3, 4, 5, 6, 7, 8, 9], "no_token": [1, 2, 3, 4, 5, 6, 7, 8]}


def test_token_counts_at_llava_video_7b_sizes():
    # 384 px / 14 px patches = 27 x 27 per frame
    assert frame_tokens(27, "average", 2, "grid") == (13 * 14, 0)  # lmms-eval's llava_vid settings: 13 rows of 13 + 1
    assert frame_tokens(27, "bilinear", 2, "grid") == (14 * 15, 0)
    assert frame_tokens(27, "bilinear", 2, "one_token") == (196, 1)  # transformers' LLaVA-OneVision count
    assert frame_tokens(27, "max", 2, "frame") == (170, 0)


def _pair(mode, position):
    """A small LLaVA-Video and a LLaVA-OneVision with the same weights."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    kwargs = {"vision_config": {**SIGLIP_384, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                "num_attention_heads": 2, "image_size": 40, "patch_size": 8},
              "text_config": {**QWEN2_7B, "vocab_size": 64, "hidden_size": 24, "intermediate_size": 48,
                              "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2},
              "image_token_index": 62, "video_token_index": 63, "vision_feature_select_strategy": "full",
              "vision_feature_layer": -1}
    torch.manual_seed(0)
    ours = LlavaVideoForConditionalGeneration(LlavaVideoConfig(**kwargs, spatial_pool_mode=mode, newline_position=position))
    stock = LlavaOnevisionForConditionalGeneration(LlavaOnevisionConfig(**kwargs))
    stock.load_state_dict(ours.state_dict())
    return ours.eval(), stock.eval()


def test_bilinear_pooling_with_one_newline_computes_what_llava_onevision_computes():
    ours, stock = _pair("bilinear", "one_token")
    video = torch.randn(2, 3, 3, 40, 40)  # 2 clips of 3 frames, 5 x 5 patches (an odd side)
    with torch.no_grad():
        torch.testing.assert_close(ours.model.get_video_features(video).pooler_output,
                                   stock.model.get_video_features(video, return_dict=True).pooler_output)
    ours, _ = _pair("average", "grid")
    with torch.no_grad():
        features = ours.model.get_video_features(video).pooler_output
    assert features.shape == (2, 3 * 2 * 3, 24)  # 5 x 5 averaged to 2 x 2, a newline after each row
    torch.testing.assert_close(features[:, 2::3], ours.model.image_newline.expand(2, 6, 24))


@pytest.mark.parametrize("mode", ["average", "max", "bilinear"])
@pytest.mark.parametrize("position", ["grid", "frame", "one_token", "no_token"])
def test_the_processor_counts_the_tokens_the_model_fills(tiny, mode, position):
    family = models.FAMILIES["llava-video"]
    model, processor = models.load(models.resolve(str(tiny)))
    model.config.spatial_pool_mode = processor.spatial_pool_mode = mode
    model.config.newline_position = processor.newline_position = position
    clips = [np.random.default_rng(i).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8) for i in range(2)]
    batch = models.encode_batch(processor, family, ["a", "bb"], clips, [[0, 0.5, 1]] * 2, [2.0, 2.0])
    per_frame, per_clip = frame_tokens(8, mode, 2, position)
    assert (batch["input_ids"] == processor.video_token_id).sum(1).tolist() == [3 * per_frame + per_clip] * 2
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()  # placeholders and features agree, or forward refuses


def test_key_map_consumes_every_llava_video_7b_tensor_and_fills_every_parameter():
    """LLaVA-NeXT's tensor names for LLaVA-Video-7B-Qwen2 (LlavaQwenForCausalLM: Qwen2 under `model.`, the tower
    under `model.vision_tower.vision_tower`, `model.mm_projector.0/2`, `model.image_newline`), on the meta device."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

    with torch.device("meta"):
        llm = Qwen2ForCausalLM(Qwen2Config(**QWEN2_7B))
        tower = SiglipVisionModel(SiglipVisionConfig(**SIGLIP_384))
        ours = LlavaVideoForConditionalGeneration(LlavaVideoConfig(vision_config=SIGLIP_384, text_config=QWEN2_7B,
                                                                   vision_feature_layer=-1))
    published = (list(llm.state_dict()) + ["model.vision_tower.vision_tower.vision_model." + n for n in tower.state_dict()]
                 + [f"model.mm_projector.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")] + ["model.image_newline"])
    renamed = list(llava_video._published.rename(published, llava_video.KEY_MAP, "LLaVA-Video-7B-Qwen2").values())
    assert len(renamed) == len(set(renamed)) and set(renamed) == set(ours.state_dict())
    layers = {int(m.group(1)) for n in published if (m := llava_video.LAYER.match(n))}
    assert max(layers) + 1 == 26  # the tower's layer count comes from the checkpoint


def test_tiny_is_written_in_llava_nexts_layout_and_every_tensor_is_consumed(tiny):
    top = json.loads((tiny / "config.json").read_text())
    assert (top["model_type"], top["architectures"]) == ("llava", ["LlavaQwenForCausalLM"])
    assert "text_config" not in top and top["hidden_size"] == SPEC.text_hidden  # Qwen2's keys at the top level
    names = set(load_file(tiny / "model.safetensors"))
    assert {"model.image_newline", "model.mm_projector.0.weight", "model.mm_projector.2.bias", "lm_head.weight",
            "model.embed_tokens.weight"} <= names
    assert any(n.startswith("model.vision_tower.vision_tower.vision_model.encoder.layers.1.") for n in names)
    assert not (tiny / "processor_config.json").exists() and not (tiny / "preprocessor_config.json").exists()
    state = llava_video.state_from_layout(tiny)
    model, _ = models.load(models.resolve(str(tiny)))
    assert set(state) == set(model.state_dict())
    for name, tensor in state.items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert (model.config.spatial_pool_mode, model.config.newline_position) == ("average", "grid")


def _copy(tiny, tmp_path):
    return shutil.copytree(tiny, tmp_path / "copy")


def _edit_config(path, **changes):
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_loading_refuses_a_tensor_left_over_or_a_parameter_left_unfilled(tiny, tmp_path):
    family = models.FAMILIES["llava-video"]
    copy = _copy(tiny, tmp_path)
    tensors = load_file(tiny / "model.safetensors")
    save_file({**tensors, "model.faster_token": torch.zeros(32)}, copy / "model.safetensors")
    with pytest.raises(InputError, match="unexpected keys: model.language_model.faster_token"):
        family.load_model(str(copy), torch.float32)
    save_file({**tensors, "vision_resampler.x": torch.zeros(2)}, copy / "model.safetensors")
    with pytest.raises(InputError, match="tensor 'vision_resampler.x' belongs to no part of the model"):
        family.load_model(str(copy), torch.float32)
    save_file({k: v for k, v in tensors.items() if k != "model.image_newline"}, copy / "model.safetensors")
    with pytest.raises(InputError, match="missing keys: model.image_newline"):
        family.load_model(str(copy), torch.float32)


def test_configs_that_are_not_llava_nexts_llava_video_are_refused_by_name(tiny, tmp_path):
    family = models.FAMILIES["llava-video"]
    copy = _copy(tiny, tmp_path)
    _edit_config(copy / "config.json", add_faster_video=True)
    with pytest.raises(InputError, match="add_faster_video"):
        family.load_processor(str(copy))
    _edit_config(copy / "config.json", add_faster_video=False, mm_spatial_pool_mode=None)
    with pytest.raises(InputError, match="mm_spatial_pool_mode None"):
        family.load_processor(str(copy))
    (copy / "config.json").write_text(json.dumps({"model_type": "llava", "text_config": {}, "vision_config": {}}))
    with pytest.raises(InputError, match=r"a transformers-format LLaVA checkpoint \(llava-hf\)"):
        family.load_processor(str(copy))


def test_the_processor_is_built_from_what_the_checkpoint_ships(tiny):
    """No processor files in LLaVA-NeXT's layout: tokenizer files, SigLIP's settings, the qwen_1_5 chat format."""
    processor = models.FAMILIES["llava-video"].load_processor(str(tiny))
    model, _ = models.load(models.resolve(str(tiny)))
    tokenizer = processor.tokenizer
    assert (processor.image_token_id, processor.video_token_id) == (
        tokenizer.convert_tokens_to_ids("<image>"), tokenizer.convert_tokens_to_ids("<video>"))
    assert (model.config.image_token_id, model.config.video_token_id) == (processor.image_token_id, processor.video_token_id)
    assert type(processor.image_processor).__name__ == "LlavaOnevisionImageProcessor"
    assert list(processor.image_processor.image_mean) == [0.5] * 3 and processor.video_processor.size["height"] == 64
    assert processor.num_image_tokens == 64 and processor.vision_aspect_ratio == "anyres_max_9"
    # at LLaVA-Video-7B's SigLIP settings frames are decoded at 384 px
    from transformers import LlavaOnevisionVideoProcessor

    processor.video_processor = LlavaOnevisionVideoProcessor(size={"height": 384, "width": 384})
    assert models.FAMILIES["llava-video"].frame_size(processor) == 384
    video = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q"}]}],
                                          add_generation_prompt=True)
    assert video == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<video>Q<|im_end|>\n"
                     "<|im_start|>assistant\n")
    image = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}],
                                          add_generation_prompt=True)
    assert "<|im_start|>user\n<image>\nQ<|im_end|>" in image


def test_a_tokenizer_without_media_tokens_gets_them_appended(tiny, tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    copy = _copy(tiny, tmp_path)
    raw = Tokenizer.from_file(str(copy / "tokenizer.json"))
    data = json.loads(raw.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in ("<image>", "<video>")]
    (copy / "tokenizer.json").write_text(json.dumps(data))
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("added_tokens_decoder", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    assert "<image>" not in AutoTokenizer.from_pretrained(copy).get_vocab()
    tokenizer = llava_video.tokenizer_from_layout(copy)
    assert tokenizer.convert_tokens_to_ids("<image>") >= len(tokenizer) - 2


def test_saved_in_the_registered_format_it_loads_again_the_same(tiny, tmp_path):
    ref = models.resolve(str(tiny))
    model, processor = models.load(ref)
    model.save_pretrained(tmp_path / "own")
    processor.save_pretrained(tmp_path / "own")
    assert json.loads((tmp_path / "own/config.json").read_text())["model_type"] == "llava_video"
    again_ref = models.resolve(str(tmp_path / "own"))
    assert again_ref.family.name == "llava-video"
    again, again_processor = models.load(again_ref)
    assert (again_processor.spatial_pool_mode, again_processor.newline_position) == ("average", "grid")
    clips = [np.random.default_rng(i).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8) for i in range(2)]
    args = (["what", "which one"], clips, [[0.0, 1.0]] * 2, [2.0, 2.0])
    batch = models.encode_batch(processor, ref.family, *args)
    again_batch = models.encode_batch(again_processor, ref.family, *args)
    assert torch.equal(batch["input_ids"], again_batch["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, again(**again_batch).logits)
