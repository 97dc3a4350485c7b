"""VideoMamba, Mobile-VideoGPT's video tower: a bidirectional Mamba (selective state-space) encoder over frame patches.

Written from the published architecture (OpenGVLab/VideoMamba's `videomamba_middle` as Mobile-VideoGPT builds it: 32
blocks of width 576 over 8 frames of 224 px in 16 px patches), with the module and parameter names of the released
checkpoints (`vision_encoder.layers.N.mixer.A_b_log`, ...), so that a Mobile-VideoGPT safetensors file loads as is.

- `selective_scan` is the state-space recurrence in plain PyTorch, the state carried one step at a time;
- `BiMambaMixer` runs it forward and backward over the token sequence (VideoMamba's "bimamba v2": separate
  convolution, projections and state matrices for the reversed direction, the two outputs summed before
  `out_proj`), on mamba_ssm's CUDA kernel where that package is installed and the tensors are on a GPU;
- `VideoMambaEncoder` is the patch embedding, the spatial and temporal position embeddings, the blocks (pre-norm,
  residual stream in float32) and the final RMSNorm; `VideoMambaTower` holds it as `vision_encoder`, as the released
  checkpoints do. VideoMamba's stochastic depth (drop path, a training-time regulariser) is not applied.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers import initialization as init

# Steps whose decays and inputs are computed together before the state walks through them: 64 x 1152 x 16 floats
# (4.7 MB) per clip at VideoMamba-M's size.
SCAN_BLOCK = 64


@strict
class VideoMambaConfig(PreTrainedConfig):
    """VideoMamba as Mobile-VideoGPT builds it (its `videomamba/config.py`: `videomamba_middle`, the
    `videomamba_m16_25M_f8_res224` weights). The released Mobile-VideoGPT config.json holds none of these: the
    defaults are that architecture, and the tiny variants write their own."""

    model_type = "mobile_videogpt_videomamba"

    img_size: int = 224  # px, square
    patch_size: int = 16  # px
    num_frames: int = 8  # frames per clip the temporal position embedding covers
    embed_dim: int = 576
    depth: int = 32
    d_state: int = 16  # state size per channel
    d_conv: int = 4  # causal depthwise convolution width
    expand: int = 2  # inner channels = expand x embed_dim
    norm_epsilon: float = 1e-5
    # VideoMamba's CLIP-distillation head (`clip_decoder`): saved in the checkpoints, never run by Mobile-VideoGPT
    clip_decoder_embed_dim: int = 576
    clip_output_dim: int = 512
    clip_return_layer: int = 1

    @property
    def d_inner(self) -> int:
        return self.expand * self.embed_dim

    @property
    def dt_rank(self) -> int:
        return math.ceil(self.embed_dim / 16)  # mamba's "auto" rank

    @property
    def patches_per_frame(self) -> int:
        return (self.img_size // self.patch_size) ** 2


# ---------------------------------------------------------------------------------------------- the scan


def selective_scan(u, delta, A, B, C, D, z=None, block: int = SCAN_BLOCK):
    """Mamba's selective scan, per channel d and state n:

        h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,      y_t = C_t . h_t + D u_t,      y_t *= silu(z_t)

    u, delta, z: [batch, length, channels]; A: [channels, state] (negative); B, C: [batch, length, state];
    D: [channels]. Computed in float32, returned in u's dtype.

    The state is carried one step at a time (linear work and memory in the length, autograd through plain
    tensor ops); each block of `block` steps gets its decays, inputs and outputs in single tensor operations.
    """
    dtype = u.dtype
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    A = A.float()
    state = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])  # [batch, channels, state]
    outputs = []
    for start in range(0, u.shape[1], block):
        steps = slice(start, start + block)
        decay = torch.exp(delta[:, steps, :, None] * A)  # [b, t, d, n]
        inputs = (delta[:, steps] * u[:, steps])[..., None] * B[:, steps, None, :]  # [b, t, d, n]
        states = []
        for t in range(decay.shape[1]):
            state = decay[:, t] * state + inputs[:, t]
            states.append(state)
        outputs.append(torch.einsum("btdn,btn->btd", torch.stack(states, dim=1), C[:, steps]))
    y = torch.cat(outputs, dim=1) + u * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


@functools.cache
def _kernel_scan():
    """mamba_ssm's fused CUDA selective scan, or None where mamba_ssm is not installed (looked up once)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        return None
    return selective_scan_fn


def scan(u, delta, A, B, C, D, z):
    """`selective_scan` on mamba_ssm's kernel for CUDA tensors when it is installed, in PyTorch otherwise."""
    kernel = _kernel_scan() if u.is_cuda else None
    if kernel is None:
        return selective_scan(u, delta, A, B, C, D, z)
    return kernel_scan(kernel, u, delta, A, B, C, D, z)


def kernel_scan(kernel, u, delta, A, B, C, D, z):
    """The same recurrence through mamba_ssm's `selective_scan_fn`, which takes channels (and states) before time:
    u, delta, z [batch, channels, length], B, C [batch, state, length], all in u's dtype; A and D in float32."""
    x, dt, b, c, gate = (t.to(u.dtype).transpose(1, 2).contiguous() for t in (u, delta, B, C, z))
    return kernel(x, dt, A.float(), b, c, D.float(), z=gate, delta_bias=None, delta_softplus=False).transpose(1, 2)


# ---------------------------------------------------------------------------------------------- modules


class BiMambaMixer(nn.Module):
    """One Mamba mixer run over the sequence and over its reverse, the two outputs summed (VideoMamba's "bimamba
    v2"): the input and output projections are shared, the convolution, dt/B/C projection, A and D are per
    direction (the `_b` parameters)."""

    def __init__(self, config: VideoMambaConfig):
        super().__init__()
        inner, state, rank = config.d_inner, config.d_state, config.dt_rank
        self.d_state, self.dt_rank = state, rank
        self.in_proj = nn.Linear(config.embed_dim, 2 * inner, bias=False)
        self.out_proj = nn.Linear(inner, config.embed_dim, bias=False)
        for suffix in ("", "_b"):
            self.add_module(f"conv1d{suffix}", nn.Conv1d(inner, inner, config.d_conv, groups=inner,
                                                         padding=config.d_conv - 1))
            self.add_module(f"x_proj{suffix}", nn.Linear(inner, rank + 2 * state, bias=False))
            self.add_module(f"dt_proj{suffix}", nn.Linear(rank, inner, bias=True))
            self.register_parameter(f"A{suffix}_log", nn.Parameter(torch.empty(inner, state)))
            self.register_parameter(f"D{suffix}", nn.Parameter(torch.empty(inner)))
        init_mixer(self)

    def _direction(self, x, z, suffix: str):
        length = x.shape[1]
        conv = getattr(self, f"conv1d{suffix}")
        x = F.silu(conv(x.transpose(1, 2))[..., :length]).transpose(1, 2)  # causal: the left-padded part only
        dt, B, C = getattr(self, f"x_proj{suffix}")(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(getattr(self, f"dt_proj{suffix}")(dt).float())
        A = -torch.exp(getattr(self, f"A{suffix}_log").float())
        return scan(x, delta, A, B, C, getattr(self, f"D{suffix}"), z)

    def forward(self, hidden_states):
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)
        forward = self._direction(x, z, "")
        backward = self._direction(x.flip(1), z.flip(1), "_b").flip(1)
        return self.out_proj(forward + backward)


@torch.no_grad()
def init_mixer(mixer: BiMambaMixer, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
    """Mamba's initialisation of what checkpoints overwrite: A = -(1 .. state) per channel (S4D-real), D = 1, and
    dt_proj's bias such that softplus(bias) is log-uniform in [dt_min, dt_max] (steps, per channel)."""
    # transformers' init functions leave parameters a checkpoint has filled alone
    for suffix in ("", "_b"):
        a_log = getattr(mixer, f"A{suffix}_log")
        init.copy_(a_log, torch.log(torch.arange(1, a_log.shape[1] + 1, dtype=torch.float32)).expand(a_log.shape))
        init.ones_(getattr(mixer, f"D{suffix}"))
        bias = getattr(mixer, f"dt_proj{suffix}").bias
        dt = torch.exp(torch.rand(bias.shape) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        init.copy_(bias, dt + torch.log(-torch.expm1(-dt)))  # the inverse of softplus


class RMSNorm(nn.Module):
    """x / rms(x) x weight, computed in float32 (mamba_ssm's RMSNorm: a weight, no bias)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()


class VideoMambaBlock(nn.Module):
    def __init__(self, config: VideoMambaConfig):
        super().__init__()
        self.mixer = BiMambaMixer(config)
        self.norm = RMSNorm(config.embed_dim, config.norm_epsilon)


class PatchEmbed(nn.Module):
    def __init__(self, config: VideoMambaConfig):
        super().__init__()
        # one frame deep (VideoMamba's kernel_size 1): a per-frame patch projection stored as a 3-d convolution
        patch = config.patch_size
        self.proj = nn.Conv3d(3, config.embed_dim, kernel_size=(1, patch, patch), stride=(1, patch, patch))


class DistillationHead(nn.Module):
    """VideoMamba's CLIP-distillation decoder (`clip_decoder.N`): part of the released weights, not of the forward."""

    def __init__(self, config: VideoMambaConfig):
        super().__init__()
        self.head = nn.Linear(config.clip_decoder_embed_dim, config.clip_output_dim)
        self.norm = nn.LayerNorm(config.clip_output_dim)


class VideoMambaEncoder(nn.Module):
    def __init__(self, config: VideoMambaConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.patches_per_frame + 1, dim))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, config.num_frames, dim))
        self.layers = nn.ModuleList(VideoMambaBlock(config) for _ in range(config.depth))
        self.norm = RMSNorm(dim, config.norm_epsilon)
        self.clip_decoder = nn.ModuleList(DistillationHead(config) for _ in range(config.clip_return_layer))

    def forward(self, frames):
        """frames [batch, T, 3, H, W] -> [batch, 1 + T x patches, dim]: a class token, then every frame's patches
        (frame-major, rows then columns)."""
        batch, n_frames = frames.shape[:2]
        if n_frames != self.config.num_frames:
            raise ValueError(f"VideoMamba takes {self.config.num_frames} frames per clip (its temporal position "
                             f"embedding), got {n_frames}")
        dtype = self.pos_embed.dtype
        x = self.patch_embed.proj(frames.transpose(1, 2).to(dtype))  # [b, dim, T, h, w]
        x = x.flatten(3).permute(0, 2, 3, 1)  # [b, T, patches, dim]
        x = x + self.pos_embed[:, None, 1:] + self.temporal_pos_embedding[:, :, None]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)
        hidden = torch.cat([cls, x.flatten(1, 2)], dim=1)
        # pre-norm blocks; the residual stream is carried in float32 (residual_in_fp32)
        residual = torch.zeros_like(hidden, dtype=torch.float32)
        for layer in self.layers:
            residual = residual + hidden.float()
            hidden = layer.mixer(layer.norm(residual).to(dtype))
        return self.norm(residual + hidden.float()).to(dtype)


class VideoMambaTower(nn.Module):
    """The video tower as Mobile-VideoGPT's checkpoints name it (`model.vision_tower.vision_encoder.*`)."""

    def __init__(self, config: VideoMambaConfig):
        super().__init__()
        self.vision_encoder = VideoMambaEncoder(config)

    def forward(self, frames):
        """frames [batch, T, 3, H, W] -> per-frame patch features [batch, T, patches, dim] (the class token dropped)."""
        batch, n_frames = frames.shape[:2]
        return self.vision_encoder(frames)[:, 1:].reshape(batch, n_frames, -1, self.vision_encoder.config.embed_dim)
