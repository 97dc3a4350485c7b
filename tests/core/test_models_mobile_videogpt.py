"""Mobile-VideoGPT's own pieces against independent computations on small tensors: the selective scan against the
step-by-step recurrence, the bidirectional mixer written out step by step, the frame selection worked by hand, the
ETP projector's pooling and depthwise convolution, the published key map, the loading rules, the processor's frame
handling; then the command lines end to end, and (GPU) the released checkpoints on three clips."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from videotune.core import models
from videotune.core.io import InputError
from videotune.core.models.families import _mobile_videogpt_model as mvg  # the model code
from videotune.core.models.families import _videomamba as vm
from videotune.core.models.families import mobile_videogpt  # the family

BIN = Path(sys.executable).parent
SPEC = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)
CORPUS = ["The subject is performing a Squat.", "He performs it correctly.", "what is the exercise",
          "which body parts are wrong here", "The video lasts for 2.00 seconds"] * 8

# Amshaker/Mobile-VideoGPT-0.5B's config.json as the seed's training writes it: Qwen2.5-0.5B-Instruct's config
# (model_type replaced) plus the `mm_*` training arguments of scripts/Mobile-VideoGPT-0.5B_training.sh. The hub is
# unreachable here, so these are the values that code and Qwen2.5-0.5B-Instruct's published config give.
RELEASED_0_5B = {
    "architectures": ["MobileVideoGPTQwenForCausalLM"], "model_type": "MobileVideoGPT_qwen",
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
    "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864, "max_position_embeddings": 32768,
    "max_window_layers": 21, "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 32768,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
    "mm_vision_tower": "OpenGVLab/VideoMamba", "image_mm_vision_tower": "openai/clip-vit-base-patch16",
    "mm_projector_type": "etp", "image_mm_projector_type": "etp", "mm_hidden_size": 576, "image_mm_hidden_size": 768,
    "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False, "use_mm_proj": True, "tune_mm_mlp_adapter": False, "image_aspect_ratio": "pad",
    "tokenizer_model_max_length": 4096, "tokenizer_padding_side": "right", "mm_projector_lr": 2e-05,
}


def published_keys(text_hidden, intermediate, text_layers, heads, kv_heads, vocab, *, clip_hidden=768,
                   clip_intermediate=3072, clip_layers=12, clip_side=224, clip_patch=16, mamba_dim=576, mamba_depth=32,
                   mamba_state=16, mamba_side=224, mamba_patch=16, mamba_frames=8, clip_out=512, clip_decoder=576):
    """{key: shape} a Mobile-VideoGPT checkpoint holds, enumerated from the seed's modules: Qwen2ForCausalLM's
    `model.*` (lm_head tied), MetaModel's `vision_tower` (VideoMamba_Stage2 -> PretrainVideoMamba with
    mamba_simple.Mamba(bimamba=True) blocks), `image_vision_tower` (CLIPVisionTower -> transformers 4.41's
    CLIPVisionModel), and the two ETProjectors (DenseMLP `mlp.mlp.{0,2}`, VideoPosEncoder `peg.peg.0`)."""
    keys = {"model.embed_tokens.weight": (vocab, text_hidden), "model.norm.weight": (text_hidden,)}
    head_dim = text_hidden // heads
    for i in range(text_layers):
        p = f"model.layers.{i}."
        keys |= {p + "self_attn.q_proj.weight": (text_hidden, text_hidden), p + "self_attn.q_proj.bias": (text_hidden,),
                 p + "self_attn.k_proj.weight": (kv_heads * head_dim, text_hidden),
                 p + "self_attn.k_proj.bias": (kv_heads * head_dim,),
                 p + "self_attn.v_proj.weight": (kv_heads * head_dim, text_hidden),
                 p + "self_attn.v_proj.bias": (kv_heads * head_dim,),
                 p + "self_attn.o_proj.weight": (text_hidden, text_hidden),
                 p + "mlp.gate_proj.weight": (intermediate, text_hidden), p + "mlp.up_proj.weight": (intermediate, text_hidden),
                 p + "mlp.down_proj.weight": (text_hidden, intermediate),
                 p + "input_layernorm.weight": (text_hidden,), p + "post_attention_layernorm.weight": (text_hidden,)}
    v = "model.vision_tower.vision_encoder."
    inner, rank, patches = 2 * mamba_dim, math.ceil(mamba_dim / 16), (mamba_side // mamba_patch) ** 2
    keys |= {v + "patch_embed.proj.weight": (mamba_dim, 3, 1, mamba_patch, mamba_patch),
             v + "patch_embed.proj.bias": (mamba_dim,), v + "cls_token": (1, 1, mamba_dim),
             v + "pos_embed": (1, patches + 1, mamba_dim), v + "temporal_pos_embedding": (1, mamba_frames, mamba_dim),
             v + "norm.weight": (mamba_dim,),
             v + "clip_decoder.0.head.weight": (clip_out, clip_decoder), v + "clip_decoder.0.head.bias": (clip_out,),
             v + "clip_decoder.0.norm.weight": (clip_out,), v + "clip_decoder.0.norm.bias": (clip_out,)}
    for i in range(mamba_depth):
        m = f"{v}layers.{i}.mixer."
        keys |= {f"{v}layers.{i}.norm.weight": (mamba_dim,), m + "in_proj.weight": (2 * inner, mamba_dim),
                 m + "out_proj.weight": (mamba_dim, inner)}
        for s in ("", "_b"):
            keys |= {m + f"conv1d{s}.weight": (inner, 1, 4), m + f"conv1d{s}.bias": (inner,),
                     m + f"x_proj{s}.weight": (rank + 2 * mamba_state, inner), m + f"dt_proj{s}.weight": (inner, rank),
                     m + f"dt_proj{s}.bias": (inner,), m + f"A{s}_log": (inner, mamba_state), m + f"D{s}": (inner,)}
    c = "model.image_vision_tower.vision_tower.vision_model."
    keys |= {c + "embeddings.class_embedding": (clip_hidden,),
             c + "embeddings.patch_embedding.weight": (clip_hidden, 3, clip_patch, clip_patch),
             c + "embeddings.position_embedding.weight": ((clip_side // clip_patch) ** 2 + 1, clip_hidden)}
    for norm in ("pre_layrnorm", "post_layernorm"):
        keys |= {c + f"{norm}.weight": (clip_hidden,), c + f"{norm}.bias": (clip_hidden,)}
    for i in range(clip_layers):
        p = f"{c}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys |= {p + f"self_attn.{proj}.weight": (clip_hidden, clip_hidden), p + f"self_attn.{proj}.bias": (clip_hidden,)}
        keys |= {p + "mlp.fc1.weight": (clip_intermediate, clip_hidden), p + "mlp.fc1.bias": (clip_intermediate,),
                 p + "mlp.fc2.weight": (clip_hidden, clip_intermediate), p + "mlp.fc2.bias": (clip_hidden,)}
        for norm in ("layer_norm1", "layer_norm2"):
            keys |= {p + f"{norm}.weight": (clip_hidden,), p + f"{norm}.bias": (clip_hidden,)}
    for name, width in (("mm_projector", mamba_dim), ("image_mm_projector", clip_hidden)):
        p = f"model.{name}."
        keys |= {p + "mlp.mlp.0.weight": (text_hidden, width), p + "mlp.mlp.0.bias": (text_hidden,),
                 p + "mlp.mlp.2.weight": (text_hidden, text_hidden), p + "mlp.mlp.2.bias": (text_hidden,),
                 p + "peg.peg.0.weight": (text_hidden, 1, 3, 3), p + "peg.peg.0.bias": (text_hidden,)}
    return keys


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return models.build_tiny("mobile-videogpt", tmp_path_factory.mktemp("mvg") / "tiny", CORPUS, seed=0, spec=SPEC)


# ---------------------------------------------------------------------------------------------- the scan


def recurrence(u, delta, A, B, C, D, z):
    """Mamba's selective scan, one batch row, channel, state and step at a time (float64 scalars, differentiable)."""
    u, delta, A, B, C, D, z = (t.double() for t in (u, delta, A, B, C, D, z))
    batch, length, channels = u.shape
    rows = []
    for b in range(batch):
        columns = []
        for d in range(channels):
            h = [torch.zeros((), dtype=torch.float64)] * A.shape[1]
            outputs = []
            for t in range(length):
                h = [torch.exp(delta[b, t, d] * A[d, n]) * h[n] + delta[b, t, d] * B[b, t, n] * u[b, t, d]
                     for n in range(A.shape[1])]
                out = sum(C[b, t, n] * h[n] for n in range(A.shape[1])) + D[d] * u[b, t, d]
                outputs.append(out * z[b, t, d] * torch.sigmoid(z[b, t, d]))
            columns.append(torch.stack(outputs))
        rows.append(torch.stack(columns, dim=1))
    return torch.stack(rows)


def _scan_inputs(seed, batch=2, length=37, channels=5, state=3):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, length, channels, generator=g)
    delta = F.softplus(torch.randn(batch, length, channels, generator=g))
    A = -torch.exp(torch.randn(channels, state, generator=g))
    B, C = torch.randn(2, batch, length, state, generator=g)
    return u, delta, A, B, C, torch.randn(channels, generator=g), torch.randn(batch, length, channels, generator=g)


@pytest.mark.parametrize("block", [1, 4, 16, 64])
def test_selective_scan_matches_the_step_by_step_recurrence(block):
    inputs = _scan_inputs(block)
    expected = recurrence(*inputs)
    assert torch.allclose(vm.selective_scan(*inputs, block=block).double(), expected, atol=1e-5, rtol=1e-4)
    # gradients too (training the video tower on a CPU goes through this path)
    leaves = [t.clone().requires_grad_() for t in inputs]
    vm.selective_scan(*leaves, block=block).sum().backward()
    reference = [t.clone().requires_grad_() for t in inputs]
    recurrence(*reference).sum().backward()
    for ours, theirs in zip(leaves, reference):
        assert torch.allclose(ours.grad.double(), theirs.grad.double(), atol=1e-4, rtol=1e-3)


def test_strong_decay_stays_finite_and_exact():
    u, delta, A, B, C, D, z = _scan_inputs(1, length=40)
    delta = delta * 50  # steps of exp(-50 x |A|): the carried state vanishes, nothing may become inf or nan
    ours = vm.selective_scan(u, delta, A, B, C, D, z)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours.double(), recurrence(u, delta, A, B, C, D, z), atol=1e-5, rtol=1e-4)


def test_the_kernel_path_hands_mamba_ssm_its_own_layout():
    """mamba_ssm's selective_scan_fn takes [batch, channels, length] and [batch, state, length]: a stand-in that
    computes the recurrence in that layout must give the PyTorch scan's result."""
    inputs = _scan_inputs(3)
    calls = []

    def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
        calls.append((u.shape, B.shape, delta_bias, delta_softplus))
        out = recurrence(u.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), D,
                         z.transpose(1, 2))
        return out.transpose(1, 2).float()

    ours = vm.kernel_scan(selective_scan_fn, *inputs)
    assert calls == [((2, 5, 37), (2, 3, 37), None, False)]
    assert torch.allclose(ours, vm.selective_scan(*inputs), atol=1e-5)


def test_bidirectional_mixer_step_by_step():
    """VideoMamba's bimamba v2, written out per time step: causal width-4 convolutions, softplus steps, one scan
    over the sequence and one over its reverse with their own parameters, summed, then out_proj."""
    torch.manual_seed(0)
    config = vm.VideoMambaConfig(embed_dim=8, d_state=3, depth=1)
    mixer = vm.BiMambaMixer(config)
    with torch.no_grad():
        for p in mixer.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(2, 11, 8)

    def direction(seq, suffix):
        inner = config.d_inner
        xz = seq @ mixer.in_proj.weight.T
        xs, zs = xz[..., :inner], xz[..., inner:]
        w, b = getattr(mixer, f"conv1d{suffix}").weight[:, 0], getattr(mixer, f"conv1d{suffix}").bias
        conv = torch.stack([sum(w[:, 3 - k] * xs[:, t - k] for k in range(4) if t - k >= 0) + b
                            for t in range(seq.shape[1])], 1)
        conv = F.silu(conv)
        dbl = conv @ getattr(mixer, f"x_proj{suffix}").weight.T
        dt, B, C = dbl[..., :config.dt_rank], dbl[..., config.dt_rank:-3], dbl[..., -3:]
        dt_proj = getattr(mixer, f"dt_proj{suffix}")
        delta = F.softplus(dt @ dt_proj.weight.T + dt_proj.bias)
        A = -torch.exp(getattr(mixer, f"A{suffix}_log"))
        return recurrence(conv, delta, A, B, C, getattr(mixer, f"D{suffix}"), zs)

    expected = (direction(x, "") + direction(x.flip(1), "_b").flip(1)) @ mixer.out_proj.weight.T.double()
    with torch.no_grad():
        assert torch.allclose(mixer(x).double(), expected, atol=1e-4, rtol=1e-4)


def test_videomamba_tokens_are_class_then_frame_by_frame():
    """Position embeddings: the class token gets pos_embed[0], each patch pos_embed[1 + p] plus its frame's temporal
    embedding; with no blocks the encoder is the final norm of those embeddings."""
    config = vm.VideoMambaConfig(img_size=8, patch_size=4, num_frames=2, embed_dim=4, depth=0, d_state=2,
                                 clip_decoder_embed_dim=4, clip_output_dim=4)
    encoder = vm.VideoMambaEncoder(config)
    with torch.no_grad():
        encoder.patch_embed.proj.weight.zero_()
        encoder.patch_embed.proj.bias.zero_()
        encoder.cls_token.copy_(torch.full((1, 1, 4), 10.0))
        encoder.pos_embed.copy_(torch.arange(5 * 4, dtype=torch.float32).reshape(1, 5, 4))
        encoder.temporal_pos_embedding.copy_(torch.tensor([[[100.0] * 4, [200.0] * 4]]))
    with torch.no_grad():
        out = encoder(torch.zeros(1, 2, 3, 8, 8))
    pos = encoder.pos_embed[0]
    expected = torch.cat([pos[:1] + 10, pos[1:] + 100, pos[1:] + 200])
    expected = expected / expected.pow(2).mean(-1, keepdim=True).add(config.norm_epsilon).sqrt()
    assert out.shape == (1, 1 + 2 * 4, 4) and torch.allclose(out[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="takes 2 frames"):
        encoder(torch.zeros(1, 3, 3, 8, 8))


# ---------------------------------------------------------------------------------------------- frame selection


def test_frame_selection_worked_by_hand():
    """One token per frame, width 1. Frames 0-2 are 0 and frame 3 is sqrt(ln 3): a zero query spreads 1/4 on every
    frame; frame 3's query puts e^(ln 3) / (3 + 3) = 1/2 on itself and 1/6 on each other frame. Scores: frames
    0-2 get 3/4 + 1/6 = 0.917, frame 3 gets 3/4 + 1/2 = 1.25: picked alone. In the second chunk the large frame
    is the first one."""
    s = math.sqrt(math.log(3))
    features = torch.tensor([0.0, 0, 0, s, s, 0, 0, 0]).reshape(1, 8, 1, 1)
    assert mvg.select_frames(features, chunk_size=4, k=1).tolist() == [[[3], [0]]]


def _scores(features, chunk_size):
    """Each frame's received attention, with plain loops over query and key tokens."""
    batch, frames, tokens, dim = features.shape
    scores = torch.zeros(batch, frames)
    for b in range(batch):
        for c in range(frames // chunk_size):
            chunk = features[b, c * chunk_size:(c + 1) * chunk_size].reshape(-1, dim).double()
            for q in chunk:
                weights = torch.stack([torch.exp(q @ key / math.sqrt(dim)) for key in chunk])
                weights = weights / weights.sum()
                scores[b, c * chunk_size:(c + 1) * chunk_size] += weights.reshape(chunk_size, tokens).sum(-1).float()
    return scores


def test_frame_selection_picks_the_most_attended_frames_in_order():
    features = torch.randn(2, 16, 3, 4, generator=torch.Generator().manual_seed(5))
    picked = mvg.select_frames(features, chunk_size=8, k=4)
    scores = _scores(features, 8).reshape(2, 2, 8)
    expected = scores.topk(4, dim=-1).indices.sort(dim=-1).values
    assert torch.equal(picked, expected)


def test_video_tower_gets_the_picked_frames_of_every_chunk_in_time_order(tiny, monkeypatch):
    model, _ = models.load(models.resolve(str(tiny)))
    inner = model.model
    seen = {}

    def tower(frames):
        seen["frames"] = frames[:, :, 0, 0, 0].tolist()
        return torch.zeros(*frames.shape[:2], 64, 32)

    monkeypatch.setattr(inner.vision_tower, "forward", tower)
    monkeypatch.setattr(mvg, "select_frames", lambda *a: torch.tensor([[[0, 2, 5, 7], [1, 3, 4, 6]]]))
    frames = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1, 1, 1).expand(1, 16, 3, 64, 64)
    with torch.no_grad():
        features = inner.get_video_features(frames, torch.zeros(1, 16, 3, 64, 64))
    assert seen["frames"] == [[0, 2, 5, 7, 9, 11, 12, 14]]
    assert features.shape == (1, 16 * 16 + 2 * 16, 32)  # context frames' tokens, then the chunks'


# ---------------------------------------------------------------------------------------------- the projector


def test_etp_projector_pools_the_grid_then_adds_its_depthwise_convolution():
    """5 x 5 tokens pooled to 3 x 3 (adaptive windows [0, 2), [1, 4), [3, 5) per axis), then a 3 x 3 depthwise
    convolution with zero padding added back; all computed with loops."""
    torch.manual_seed(1)
    etp = mvg.ETProjector(in_dim=3, out_dim=2, pool=3)
    x = torch.randn(1, 25, 3)
    with torch.no_grad():
        out = etp(x)
        lin1, lin2 = etp.mlp.mlp[0], etp.mlp.mlp[2]
        y = F.gelu(x @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias  # [1, 25, 2]
    grid = y[0].reshape(5, 5, 2)  # token r * 5 + c sits at row r, column c
    windows = [(0, 2), (1, 4), (3, 5)]
    pooled = torch.stack([torch.stack([grid[r0:r1, c0:c1].mean((0, 1)) for c0, c1 in windows]) for r0, r1 in windows])
    conv = etp.peg.peg[0]
    expected = torch.zeros(3, 3, 2)
    for r in range(3):
        for c in range(3):
            for ch in range(2):
                total = conv.bias[ch]
                for dr in range(3):
                    for dc in range(3):
                        rr, cc = r + dr - 1, c + dc - 1
                        if 0 <= rr < 3 and 0 <= cc < 3:
                            total = total + conv.weight[ch, 0, dr, dc] * pooled[rr, cc, ch]
                expected[r, c, ch] = pooled[r, c, ch] + total
    assert out.shape == (1, 9, 2)
    assert torch.allclose(out[0], expected.reshape(9, 2).detach(), atol=1e-6)


def test_a_chunk_of_frames_is_pooled_as_one_square_grid():
    """The video ETP lays a chunk's 4 frames x 2 x 2 tokens out as one 4 x 4 grid, row by row (as the seed's
    view(B, H, W, C)): the first pooled token averages frame 0's first row and frame 0's second row."""
    tokens = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)  # frame f holds tokens 4f .. 4f + 3
    pooled = mvg.pool_tokens(tokens, 2)
    assert pooled.flatten().tolist() == [(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, (8 + 9 + 12 + 13) / 4,
                                         (10 + 11 + 14 + 15) / 4]


# ---------------------------------------------------------------------------------------------- key map and loading


@pytest.mark.parametrize("size", ["0.5b", "1.5b"])
def test_the_released_architecture_holds_exactly_the_published_keys(size):
    """The released configs give every key the seed's modules write, with its shape, and nothing else."""
    text = {"0.5b": dict(text_hidden=896, intermediate=4864, text_layers=24, heads=14, kv_heads=2),
            "1.5b": dict(text_hidden=1536, intermediate=8960, text_layers=28, heads=12, kv_heads=2)}[size]
    released = {**RELEASED_0_5B, "hidden_size": text["text_hidden"], "intermediate_size": text["intermediate"],
                "num_hidden_layers": text["text_layers"], "num_attention_heads": text["heads"]}
    config = mvg.MobileVideoGPTQwenConfig(**released)
    with torch.device("meta"):
        model = mvg.MobileVideoGPTQwenForCausalLM(config)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours.pop("lm_head.weight") == (151936, text["text_hidden"])  # tied to the embeddings: not in the file
    assert ours == published_keys(**text, vocab=151936)


def test_tiny_is_saved_in_the_published_layout_and_loads_every_key(tiny):
    with safe_open(tiny / "model.safetensors", "pt") as f:
        saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    config = json.loads((tiny / "config.json").read_text())
    assert config["model_type"] == "MobileVideoGPT_qwen" and config["architectures"] == ["MobileVideoGPTQwenForCausalLM"]
    vocab = config["vocab_size"]
    assert saved == published_keys(32, 64, 2, 4, 4, vocab, clip_hidden=32, clip_intermediate=64, clip_layers=2,
                                   clip_side=64, clip_patch=8, mamba_dim=32, mamba_depth=2, mamba_state=4,
                                   mamba_side=64, mamba_patch=8, clip_out=32, clip_decoder=32)
    model, _ = models.load(models.resolve(str(tiny)))
    state = model.state_dict()
    tensors = load_file(tiny / "model.safetensors")
    assert all(torch.equal(state[k], v) for k, v in tensors.items())  # loaded as stored (none re-initialised)


def test_transformers_auto_classes_read_the_checkpoint(tiny):
    """Registered under the released model_type: AutoConfig / AutoModelForImageTextToText / AutoProcessor (the
    processor files a saved model carries; released checkpoints have none, `load_processor` builds it)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    for auto in (AutoModelForImageTextToText, AutoModelForCausalLM):
        assert type(auto.from_pretrained(tiny)).__name__ == "MobileVideoGPTQwenForCausalLM"
    processor = AutoProcessor.from_pretrained(tiny)
    built = mobile_videogpt.MOBILE_VIDEOGPT.load_processor(str(tiny))
    assert type(processor) is type(built) and type(processor.video_processor) is type(built.video_processor)
    assert (processor.num_frames, processor.chunk_size, processor.image_tokens, processor.video_tokens) == (
        built.num_frames, built.chunk_size, built.image_tokens, built.video_tokens)


def _copy_with(tiny, out, edit):
    shutil.copytree(tiny, out)
    tensors = load_file(out / "model.safetensors")
    edit(tensors)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_a_key_too_many_or_too_few_is_refused_by_name(tiny, tmp_path):
    extra = _copy_with(tiny, tmp_path / "extra", lambda t: t.update({"model.vision_tower.vision_encoder.pool_norm.weight":
                                                                     torch.ones(32)}))
    with pytest.raises(InputError, match="1 keys unused.*pool_norm"):
        models.load(models.resolve(str(extra)))
    missing = _copy_with(tiny, tmp_path / "missing",
                         lambda t: t.pop("model.vision_tower.vision_encoder.layers.1.mixer.A_b_log"))
    with pytest.raises(InputError, match="1 parameters missing.*layers.1.mixer.A_b_log"):
        models.load(models.resolve(str(missing)))


def test_a_file_without_the_clip_tower_reads_it_from_image_mm_vision_tower(tiny, tmp_path):
    """The seed loads CLIP from openai/clip-vit-base-patch16 itself; a checkpoint without those weights gets them
    from config.json's `image_mm_vision_tower` (here a local CLIPVisionModel directory)."""
    from transformers import CLIPVisionModel

    full, _ = models.load(models.resolve(str(tiny)))
    clip = CLIPVisionModel(full.config.image_vision_config)
    clip.load_state_dict(full.model.image_vision_tower.vision_tower.vision_model.state_dict())
    clip.save_pretrained(tmp_path / "clip")
    prefix = "model.image_vision_tower."
    bare = _copy_with(tiny, tmp_path / "bare", lambda t: [t.pop(k) for k in [k for k in t if k.startswith(prefix)]])
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "image_mm_vision_tower": str(tmp_path / "clip")}))
    model, _ = models.load(models.resolve(str(bare)))
    ours, reference = model.state_dict(), full.state_dict()
    assert all(torch.equal(ours[k], reference[k]) for k in reference)


def test_both_towers_count_as_vision_and_freeze_together(tiny):
    from videotune.train.modes import ModeOptions, apply_mode, parameter_report

    model, _ = models.load(models.resolve(str(tiny)))
    family = mobile_videogpt.MOBILE_VIDEOGPT
    apply_mode(model, family, ModeOptions(freeze_vision=True, freeze_projector=True, last_blocks=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.layers.1.") for n in trainable)
    report = parameter_report(model, family)
    towers = sum(p.numel() for n, p in model.named_parameters()
                 if n.startswith(("model.vision_tower.", "model.image_vision_tower.")))
    projectors = sum(p.numel() for n, p in model.named_parameters() if "mm_projector" in n)
    assert (report["groups"]["vision"]["total"], report["groups"]["vision"]["trainable"]) == (towers, 0)
    assert (report["groups"]["projector"]["total"], report["groups"]["projector"]["trainable"]) == (projectors, 0)


# ---------------------------------------------------------------------------------------------- processor


def test_frames_are_thinned_to_16_and_padded_with_zero_frames(tiny):
    processor = mobile_videogpt.MOBILE_VIDEOGPT.load_processor(str(tiny))
    long_clip = np.stack([np.full((64, 64, 3), 10 * i, dtype=np.uint8) for i in range(20)])
    kept = processor.clip_frames(long_clip)
    assert [int(f[0, 0, 0]) // 10 for f in kept] == np.linspace(0, 19, 16, dtype=int).tolist()
    short_clip = np.full((3, 64, 64, 3), 200, dtype=np.uint8)
    batch = processor(text=["<|video_pad|>\nq", "<|video_pad|>\nq"], videos=[long_clip, short_clip], return_tensors="pt",
                      padding=True)
    assert batch["pixel_values_videos"].shape == batch["pixel_values_context"].shape == (2, 16, 3, 64, 64)
    # VideoMamba's normalisation (ImageNet mean and std): 200 / 255 of the red channel
    assert batch["pixel_values_videos"][1, 0, 0, 0, 0] == pytest.approx((200 / 255 - 0.485) / 0.229, abs=1e-4)
    assert not batch["pixel_values_videos"][1, 3:].any() and not batch["pixel_values_context"][1, 3:].any()
    assert batch["pixel_values_context"][1, :3].abs().sum() > 0
    # 16 context frames x 4 x 4 tokens + 2 chunks x 4 x 4 video tokens, per clip
    assert (batch["input_ids"] == processor.video_token_id).sum(1).tolist() == [288, 288]


def test_images_are_padded_to_a_square_of_clips_mean_colour(tiny):
    processor = mobile_videogpt.MOBILE_VIDEOGPT.load_processor(str(tiny))
    wide = np.zeros((32, 64, 3), dtype=np.uint8)
    batch = processor(text=["<|image_pad|>\nq"], images=[[wide]], return_tensors="pt")
    pixels = batch["pixel_values"][0]  # CLIP-normalised: the mean colour pads to ~0, black to a negative value
    assert pixels.shape == (3, 64, 64)
    assert pixels[:, :8].abs().max() < 0.02 and pixels[:, -8:].abs().max() < 0.02
    assert (pixels[:, 24:40] < -1).all()
    assert (batch["input_ids"] == processor.image_token_id).sum() == 16


def test_the_released_geometry_224_px_and_2402_tokens_per_clip(tiny):
    """Built from the released config.json (no tower configs: the defaults are the released towers)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    ids = {"image_token_id": tokenizer.convert_tokens_to_ids(mvg.IMAGE_TOKEN),
           "video_token_id": tokenizer.convert_tokens_to_ids(mvg.VIDEO_TOKEN)}
    config = mvg.MobileVideoGPTQwenConfig(**RELEASED_0_5B, **ids)
    processor = mvg.build_processor(config, tokenizer)
    assert mobile_videogpt.MOBILE_VIDEOGPT.frame_size(processor) == 224
    assert processor.tokens_per_clip == 16 * 144 + 2 * 49
    assert mobile_videogpt.MOBILE_VIDEOGPT.set_frame_size(processor, config, 224) == 144 + 7
    with pytest.raises(InputError, match="image_pad.*config.json expects 151655"):
        mvg.build_processor(mvg.MobileVideoGPTQwenConfig(**RELEASED_0_5B), tokenizer)


def test_registry_names():
    assert models.resolve("mobile-videogpt-0.5b").source == "Amshaker/Mobile-VideoGPT-0.5B"
    assert models.resolve("Amshaker/Mobile-VideoGPT-1.5B").family.name == "mobile-videogpt"


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow  # five console-script start-ups (torch + transformers imports each): about 2 min on 2 cores
def test_mobile_videogpt_through_the_command_lines(gym_raw, tmp_path):
    """As `make <rq> MODEL=tiny-mobile-videogpt` runs it: build, train a few steps (LoRA), answer, quantize to
    int8-dynamic, answer again."""
    from videotune.core.io import read_jsonl, read_samples, write_jsonl
    from videotune.core.schemas import Prediction
    from videotune.prep.build import BuildOptions, build_examples

    built, _ = build_examples(read_samples(gym_raw / "samples.parquet"), gym_raw, BuildOptions("aqa", "temporal", 4, 10, 0))
    write_jsonl(tmp_path / "train.jsonl", built[:4])
    write_jsonl(tmp_path / "test.jsonl", built[4:7])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        done = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]

    tiny_dir = tmp_path / "tiny-mobile-videogpt"
    run("vt-train", "tiny-model", "--family", "mobile-videogpt", "--corpus", tmp_path / "train.jsonl", "--out", tiny_dir,
        "--vocab-size", 400, "--text-hidden", 32, "--vision-hidden", 32)
    run("vt-train", "sft", "--model", tiny_dir, "--train-examples", tmp_path / "train.jsonl", "--data-root", gym_raw,
        "--out", tmp_path / "train", "--mode", "lora", "--lora-r", 4, "--max-steps", 3, "--batch-size", 2)
    trained = tmp_path / "train" / "model"
    assert models.resolve(str(trained)).family.name == "mobile-videogpt"
    keys = []
    for directory in (tiny_dir, trained):  # the trained model is saved in the published layout too
        with safe_open(directory / "model.safetensors", "pt") as f:
            keys.append(sorted(f.keys()))
    assert keys[0] == keys[1]
    for model_dir, out in ((trained, "infer"), (tmp_path / "int8" / "model", "infer-int8")):
        if out == "infer-int8":
            run("vt-quantize", "--method", "int8-dynamic", "--model", trained, "--out", tmp_path / "int8")
        run("vt-infer", "generate", "--model", model_dir, "--examples", tmp_path / "test.jsonl", "--data-root", gym_raw,
            "--out", tmp_path / out, "--max-new-tokens", 4)
        predictions = read_jsonl(tmp_path / out / "predictions.jsonl", Prediction)
        assert [p.status for p in predictions] == ["ok"] * 3


# ---------------------------------------------------------------------------------------------- the released model


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["mobile-videogpt-0.5b", "mobile-videogpt-1.5b"])
def test_released_checkpoint_answers_three_clips(name, gym_raw, tmp_path):
    """The published weights, loaded from the local HF cache (never downloaded here): every key consumed, three
    synthetic gym clips answered with words."""
    from videotune.core.io import read_samples
    from videotune.core.video import SamplingSpec, sample_frames

    ref = models.resolve(name)
    if not _cached(ref.source):
        pytest.skip(f"{ref.source} is not in the local Hugging Face cache")
    model, processor = models.load(ref, dtype="bfloat16", device="cuda")
    samples = [s for s in read_samples(gym_raw / "samples.parquet") if s.media_kind == "video"][:3]
    side = ref.family.frame_size(processor)
    clips = [sample_frames(gym_raw / s.media, SamplingSpec(n_frames=16, size=side)) for s in samples]
    inputs = models.encode_batch(processor, ref.family, ["Describe what the person in this video is doing."] * 3,
                                 [c.frames for c in clips], [c.timestamps_s for c in clips],
                                 [c.duration_s for c in clips], padding_side="left")
    answer = models.generate(model, processor.tokenizer, inputs, max_new_tokens=32,
                             stop_ids=models.stop_token_ids(processor.tokenizer, ref.family))
    assert all(len(text.split()) >= 2 for text in answer.texts), answer.texts
