"""NVILA-Lite: each piece against an independent computation on small tensors, the published layout's key map at
NVILA-Lite-2B's real sizes, and the tiny variant through the loader real checkpoints go through. The generic
family tests (build, load, labels, frame size, training full and LoRA, profile, generation) run over it in
test_models_families.py; LoRA adapters, int8-dynamic, the console scripts and the real checkpoint on a GPU in
test_models_published_layouts.py."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from videotune.core import models
from videotune.core.io import InputError
from videotune.core.models.families import nvila
from videotune.core.models.families._nvila_model import (
    NvilaConfig,
    NvilaForConditionalGeneration,
    NvilaProcessor,
    NvilaProjector,
    closest_grid,
    downsample_3x3,
    image_tiles,
)

SPEC = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)
CORPUS = ["The subject is performing a squat. He performs it correctly.", "what is the exercise", "yes no"] * 20

# NVILA-Lite-2B's parts as published: llm/ is Qwen2.5-1.5B-Instruct's architecture (tied LM head), vision_tower/ is
# paligemma-siglip-so400m-patch14-448 without its pooling head (the VILA scripts' --vision_tower).
QWEN25_15B = {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
              "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True}
SIGLIP_448 = {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
              "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 448, "patch_size": 14,
              "vision_use_head": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return models.build_tiny("nvila", tmp_path_factory.mktemp("nvila") / "tiny-nvila", CORPUS, seed=0, spec=SPEC)


def test_downsample_3x3_worked_by_hand():
    # a 4 x 4 grid of one channel, values 1..16 row by row; padded to 6 x 6 with zeros, cut into 2 x 2 blocks
    grid = torch.arange(1, 17, dtype=torch.float32).reshape(1, 16, 1)
    out = downsample_3x3(grid)
    assert out.shape == (1, 4, 9)
    assert out[0].tolist() == [
        [1, 2, 3, 5, 6, 7, 9, 10, 11],   # block (0, 0): rows 0-2, columns 0-2
        [4, 0, 0, 8, 0, 0, 12, 0, 0],    # block (0, 1): column 3 and padding
        [13, 14, 15, 0, 0, 0, 0, 0, 0],  # block (1, 0): row 3 and padding
        [16, 0, 0, 0, 0, 0, 0, 0, 0],    # block (1, 1)
    ]
    # two channels: patch (r, s) of a block sits at channels 2 (3 r + s) .. 2 (3 r + s) + 1
    two = torch.stack([grid[..., 0], -grid[..., 0]], dim=-1)
    assert downsample_3x3(two)[0, 0].tolist() == [1, -1, 2, -2, 3, -3, 5, -5, 6, -6, 7, -7, 9, -9, 10, -10, 11, -11]
    # NVILA-Lite-2B's 32 x 32 patches (448 px / 14 px): padded to 33, 121 tokens of 9 x 1152 channels
    assert downsample_3x3(torch.zeros(2, 1024, 1152)).shape == (2, 121, 9 * 1152)


def test_projector_has_the_published_modules_and_computes_them_in_order():
    config = NvilaConfig(vision_config={**SIGLIP_448, "hidden_size": 4}, text_config={**QWEN25_15B, "hidden_size": 6})
    projector = NvilaProjector(config)
    shapes = {name: tuple(p.shape) for name, p in projector.state_dict().items()}
    # mm_projector/model.safetensors of an mlp_downsample_3x3_fix projector (VILA's base_projector.py)
    assert shapes == {"layers.1.weight": (36,), "layers.1.bias": (36,), "layers.2.weight": (12, 36), "layers.2.bias": (12,),
                      "layers.4.weight": (12,), "layers.4.bias": (12,), "layers.5.weight": (6, 12), "layers.5.bias": (6,),
                      "layers.7.weight": (6, 6), "layers.7.bias": (6,)}
    torch.manual_seed(0)
    for p in projector.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(1, 9, 4)  # a 3 x 3 grid: one token
    p = dict(projector.named_parameters())
    f = torch.nn.functional
    h = f.layer_norm(downsample_3x3(x), (36,), p["layers.1.weight"], p["layers.1.bias"])
    h = f.gelu(f.linear(h, p["layers.2.weight"], p["layers.2.bias"]))
    h = f.layer_norm(h, (12,), p["layers.4.weight"], p["layers.4.bias"])
    h = f.gelu(f.linear(h, p["layers.5.weight"], p["layers.5.bias"]))
    h = f.linear(h, p["layers.7.weight"], p["layers.7.bias"])
    torch.testing.assert_close(projector(x), h)


def test_key_map_consumes_every_nvila_lite_2b_tensor_and_fills_every_parameter():
    """Tensor names as NVILA's save_pretrained writes each folder (a tied LM head is not saved), on the meta device
    at NVILA-Lite-2B's sizes: every name renames onto a parameter, every parameter gets one."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

    with torch.device("meta"):
        llm = Qwen2ForCausalLM(Qwen2Config(**QWEN25_15B))
        tower = SiglipVisionModel(SiglipVisionConfig(**SIGLIP_448))
        ours = NvilaForConditionalGeneration(NvilaConfig(vision_config=SIGLIP_448, text_config=QWEN25_15B))
    published = {
        "llm": [n for n in llm.state_dict() if n != "lm_head.weight"],
        # transformers 4's SiglipVisionModel (NVILA's) names its transformer `vision_model`
        "vision_tower": ["vision_model." + n for n in tower.state_dict()],
        "mm_projector": [f"layers.{i}.{w}" for i in (1, 2, 4, 5, 7) for w in ("weight", "bias")],
    }
    renamed = []
    for part, names in published.items():
        rules = [(p, o) for folder, p, o in nvila.KEY_MAP if folder == part]
        renamed += list(nvila._published.rename(names, rules, part).values())
    assert len(renamed) == len(set(renamed))
    assert set(renamed) == set(ours.state_dict()) - {"lm_head.weight"}  # the head is tied to the embeddings
    assert ours.config.tie_word_embeddings


def test_tiny_is_written_in_nvilas_layout_and_every_tensor_is_consumed(tiny):
    top = json.loads((tiny / "config.json").read_text())
    assert top["model_type"] == "llava_llama" and top["mm_projector_cfg"]["mm_projector_type"] == "mlp_downsample_3x3_fix"
    assert (tiny / "llm/tokenizer_config.json").is_file() and (tiny / "vision_tower/preprocessor_config.json").is_file()
    assert set(load_file(tiny / "mm_projector/model.safetensors")) == {
        f"layers.{i}.{w}" for i in (1, 2, 4, 5, 7) for w in ("weight", "bias")}
    assert all(n.startswith("vision_model.") for n in load_file(tiny / "vision_tower/model.safetensors"))
    layout = nvila.read_layout(tiny)
    state = nvila.state_from_layout(layout)
    model, _ = models.load(models.resolve(str(tiny)))
    assert set(state) == set(model.state_dict())
    for name, tensor in state.items():
        assert torch.equal(model.state_dict()[name], tensor), name


def _copy(tiny, tmp_path):
    return shutil.copytree(tiny, tmp_path / "copy")


def test_loading_refuses_a_tensor_left_over_or_a_parameter_left_unfilled(tiny, tmp_path):
    ref = models.resolve(str(tiny))
    copy = _copy(tiny, tmp_path)
    projector = load_file(copy / "mm_projector/model.safetensors")
    save_file({**projector, "layers.9.weight": torch.zeros(2)}, copy / "mm_projector/model.safetensors")
    with pytest.raises(InputError, match="unexpected keys: model.mm_projector.layers.9.weight"):
        ref.family.load_model(str(copy), torch.float32)
    llm = load_file(tiny / "llm/model.safetensors")
    save_file({**llm, "rotary.inv_freq": torch.zeros(2)}, copy / "llm/model.safetensors")
    save_file(projector, copy / "mm_projector/model.safetensors")
    with pytest.raises(InputError, match="tensor 'rotary.inv_freq' belongs to no part of the model"):
        ref.family.load_model(str(copy), torch.float32)
    save_file({k: v for k, v in llm.items() if k != "model.norm.weight"}, copy / "llm/model.safetensors")
    with pytest.raises(InputError, match="missing keys: model.language_model.norm.weight"):
        ref.family.load_model(str(copy), torch.float32)


def _edit_config(path, **changes):
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_layouts_that_are_not_nvila_lite_are_refused_by_name(tiny, tmp_path):
    copy = _copy(tiny, tmp_path)
    family = models.FAMILIES["nvila"]
    _edit_config(copy / "config.json", dynamic_s2=True)
    with pytest.raises(InputError, match="dynamic_s2 is set"):
        family.load_model(str(copy), torch.float32)
    _edit_config(copy / "config.json", dynamic_s2=False, mm_vision_select_feature="patch")
    with pytest.raises(InputError, match="mm_vision_select_feature 'patch'"):
        family.load_model(str(copy), torch.float32)
    _edit_config(copy / "config.json", mm_vision_select_feature="cls_patch")
    _edit_config(copy / "mm_projector/config.json", mm_projector_type="mlp_downsample_2x2_fix")
    with pytest.raises(InputError, match="mlp_downsample_2x2_fix"):
        family.load_processor(str(copy))
    shutil.rmtree(copy / "mm_projector")
    _edit_config(copy / "config.json", model_type="vila")
    with pytest.raises(InputError, match="pass --trust-remote-code"):
        family.load_processor(str(copy))


def test_an_hf_repository_with_the_folders_loads_natively_and_remote_code_is_opt_in(tiny, tmp_path, monkeypatch):
    import transformers

    copy = _copy(tiny, tmp_path)
    _edit_config(copy / "config.json", model_type="vila", architectures=["VILAForCausalLM"])
    assert models.resolve(str(copy)).family.name == "nvila"
    model, processor = models.load(models.resolve(str(copy)))  # no remote code: the same folders, read natively
    assert type(model).__name__ == "NvilaForConditionalGeneration"
    calls = []
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: calls.append(("model", k)) or model)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: calls.append(("processor", k)) or processor)
    models.load(models.resolve(str(copy)), trust_remote_code=True)
    assert [(what, k.get("trust_remote_code")) for what, k in calls] == [("processor", True), ("model", True)]


def test_tokens_per_frame_and_tiles_at_nvila_lite_sizes(tiny):
    processor = models.FAMILIES["nvila"].load_processor(str(tiny))
    assert processor.tokens_per_tile == 9  # 64 px / 8 px patches = 8 -> padded to 9 -> 3 x 3
    processor.image_processor.size = {"height": 448, "width": 448}
    processor.patch_size = 14
    assert processor.tokens_per_tile == 121  # NVILA-Lite-2B: 32 x 32 patches -> 11 x 11
    assert models.FAMILIES["nvila"].frame_size(processor) == 448  # frames are decoded at the tower's side


def test_still_image_grids_worked_by_hand():
    assert closest_grid(448, 448, 448, 1, 12) == (1, 1)
    assert closest_grid(896, 448, 448, 1, 12) == (2, 1)
    assert closest_grid(448, 1400, 448, 1, 12) == (1, 3)
    # a square image: (1, 1), (2, 2), (3, 3) tie on aspect; a larger grid wins while the image has more than half
    # its pixels (900^2 > 0.5 * 4 * 448^2, but < 0.5 * 9 * 448^2)
    assert closest_grid(900, 900, 448, 1, 12) == (2, 2)
    tiles = image_tiles(np.zeros((900, 900, 3), np.uint8), 448, 1, 12)
    assert len(tiles) == 5 and all(t.shape == (448, 448, 3) for t in tiles)  # 4 tiles and the thumbnail
    assert len(image_tiles(np.zeros((64, 64, 3), np.uint8), 64, 1, 12)) == 1  # one tile: no thumbnail


def test_frames_and_tiles_are_laid_out_as_nvila_feeds_them(tiny):
    processor = models.FAMILIES["nvila"].load_processor(str(tiny))
    video, image, newline = processor.video_token_id, processor.image_token_id, processor.tokenizer("\n")["input_ids"]
    assert len(newline) == 1
    text = processor.tokenizer("what", add_special_tokens=False)["input_ids"]
    clip = np.zeros((2, 64, 64, 3), np.uint8)
    ids = processor(text=["<vila/video>what"], videos=[clip])["input_ids"][0]
    assert ids == ([video] * 9 + newline) * 2 + text  # each frame: 9 tokens, then "\n"
    # a prompt's only image is tiled, each tile followed by the encoder's "\n" and one more (NVILA's prompt)
    ids = processor(text=["<image>what"], images=[[np.zeros((64, 64, 3), np.uint8)]])["input_ids"][0]
    assert ids == [image] * 9 + newline + newline + text
    # rendered by the checkpoint's own template, media tokens in place, the message stripped
    prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"},
                                                                          {"type": "text", "text": "what "}]}],
                                           add_generation_prompt=True)
    assert prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<vila/video>what"
                      "<|im_end|>\n<|im_start|>assistant\n")


def test_a_config_naming_vilas_qwen2_template_gets_it(tiny, tmp_path):
    copy = _copy(tiny, tmp_path)
    _edit_config(copy / "config.json", chat_template="qwen2")
    processor = models.FAMILIES["nvila"].load_processor(str(copy))
    prompt = processor.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi")
    _edit_config(copy / "config.json", chat_template="mistral")
    with pytest.raises(InputError, match="chat_template 'mistral'"):
        models.FAMILIES["nvila"].load_processor(str(copy))


def _batch(processor, family):
    clips = [np.random.default_rng(i).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8) for i in range(2)]
    return models.encode_batch(processor, family, ["what is it", "which exercise"], clips, [[0.0, 0.5, 1.0]] * 2,
                               [1.5, 1.5], padding_side="left")


def test_saved_in_the_registered_format_it_loads_again_the_same(tiny, tmp_path):
    ref = models.resolve(str(tiny))
    model, processor = models.load(ref)
    model.save_pretrained(tmp_path / "own")
    processor.save_pretrained(tmp_path / "own")
    assert json.loads((tmp_path / "own/config.json").read_text())["model_type"] == "nvila"
    again_ref = models.resolve(str(tmp_path / "own"))
    assert again_ref.family.name == "nvila"
    again, again_processor = models.load(again_ref)
    batch, again_batch = _batch(processor, ref.family), _batch(again_processor, ref.family)
    assert all(torch.equal(batch[k], again_batch[k]) for k in batch)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, again(**again_batch).logits)
    from transformers import AutoModelForImageTextToText, AutoProcessor  # ordinary transformers Auto classes too

    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path / "own")) is NvilaForConditionalGeneration
    assert type(AutoProcessor.from_pretrained(tmp_path / "own")) is NvilaProcessor
