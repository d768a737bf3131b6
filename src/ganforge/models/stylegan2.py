"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", CVPR), after the
PyTorch reference NVlabs/stylegan2-ada-pytorch (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), training/networks.py. The defaults are that code's ``cifar`` configuration
(train.py ``cfg_specs['cifar']``) at 32 px: channel_base 32768 (fmaps 1), channel_max 512, a 2-layer
mapping network, minibatch-stddev group 32, conv_clamp 256, D without residual connections
(``architecture='orig'``) and no style mixing.

Generator: z (N, z_dim) [+ label] -> mapping network -> w broadcast to ``num_ws`` copies (N, num_ws, w_dim)
-> synthesis network: a learned 4x4 constant, then per resolution 4, 8, ..., R two modulated and demodulated
3x3 convolutions (the first upsamples 2x with the [1, 3, 3, 1] filter) with per-pixel noise, and the
"skip" output: a toRGB at every resolution whose images are upsampled and summed. The output is linear,
as in the reference: roughly in [-1, 1] once trained, neither tanh-squashed nor clamped.

Discriminator: fromRGB at the input resolution, one block per resolution R..8 (two 3x3 convolutions, the
second downsampling with the low-pass filter; with ``d_architecture='resnet'`` plus a 1x1 filtered
downsampling skip, both branches scaled by sqrt(1/2)), then at 4x4 the epilogue: minibatch stddev, 3x3
conv, fully connected, output. Conditional D (the stylegan2-ada way): the labels go through a mapping
network of ``d_map_layers`` layers to cmap (N, cmap_dim), the output layer has cmap_dim units and the
logit is (out * cmap).sum / sqrt(cmap_dim). No normalisation layers anywhere.

Noise inputs: in training mode fresh noise from torch's global RNG. Outside training the config's
``noise_mode`` decides: 'random' (the reference's default; ``ganforge sample`` stays reproducible because
it seeds torch before sampling), 'const' (fixed per-layer maps saved with the weights) or 'none'. A
``noise_mode`` argument to ``forward``/``synthesis`` overrides both.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .layers import check_channels, check_labels, check_num_classes, check_resolution
from .registry import check_option_values, register_model
from .stylegan2_layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    MinibatchStdLayer,
    SynthesisLayer,
    ToRGBLayer,
    float32,
    lowpass_filter,
    upsample2d,
)

NOISE_MODES = ("random", "const", "none")
D_ARCHITECTURES = ("orig", "resnet")
# A configuration small enough to train on a CPU: 64 feature maps at every resolution up to 32 px (parameter
# counts in docs/models.md and the tests).
SMALL_OPTIONS = dict(z_dim=128, w_dim=128, map_layers=2, channel_base=2048, channel_max=64, mbstd_group=4)


def channels_at(cfg: StyleGAN2Config, res: int) -> int:
    """Feature maps at resolution ``res``: min(channel_base / res, channel_max), as in the reference."""
    return min(cfg.channel_base // res, cfg.channel_max)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network. x (N, I, R/2, R/2) or None (the 4x4 constant), img
    (N, channels, R/2, R/2) or None, ws (N, num_conv + 1, w_dim) -> x (N, O, R, R), img (N, channels, R, R)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: StyleGAN2Config, resolution: int):
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, cfg.w_dim, resolution, up=True,
                                        conv_clamp=cfg.conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, cfg.w_dim, resolution, conv_clamp=cfg.conv_clamp)
        self.torgb = ToRGBLayer(out_channels, cfg.channels, cfg.w_dim, conv_clamp=cfg.conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.register_buffer("resample_filter", lowpass_filter(), persistent=False)

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str):
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)  # (N, O, 4, 4)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)  # (N, O, R, R)
        x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv]).float()  # (N, channels, R, R), summed in float32
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, channels, R, R), float32, linear output. Block b{res} uses
    ws[:, i : i + num_conv + 1] where i counts the convolutions before it, so each toRGB shares its w with
    the next block's first convolution (num_ws = 2 log2(R) - 2)."""

    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        self.w_dim = cfg.w_dim
        self.noise_mode = cfg.noise_mode  # outside training
        self.resolutions = [2**i for i in range(2, check_resolution(cfg.resolution) + 1)]
        self.num_ws = 0
        for res in self.resolutions:
            in_channels = channels_at(cfg, res // 2) if res > 4 else 0
            block = SynthesisBlock(in_channels, channels_at(cfg, res), cfg, res)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last toRGB

    def forward(self, ws: torch.Tensor, noise_mode: str | None = None) -> torch.Tensor:
        # ws: (N, num_ws, w_dim) -> (N, channels, R, R)
        if ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        noise_mode = noise_mode or ("random" if self.training else self.noise_mode)  # an explicit mode wins
        x = img = None
        i = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, i: i + block.num_conv + 1].float(), noise_mode)
            i += block.num_conv
        return img


class StyleGAN2Generator(nn.Module):
    """G(z, c) = synthesis(mapping(z, c)), with style mixing in training mode (module docstring)."""

    bounded_output = False  # linear toRGB output, as the reference: callers clamp when they convert to pixels

    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        check_channels(cfg.channels)
        _check_widths(cfg)
        self.z_dim, self.w_dim = cfg.z_dim, cfg.w_dim
        self.num_classes = check_num_classes(cfg.num_classes)
        self.style_mixing = cfg.style_mixing
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, self.num_classes, cfg.w_dim, cfg.map_layers, cfg.mapping_lr_mult,
                                      num_ws=self.num_ws, w_avg_beta=0.995)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str | None = None) -> torch.Tensor:
        # z: (N, z_dim), c: (N,) labels, (N, K) class weights or None -> images (N, channels, R, R), float32
        c = check_labels(c, self.num_classes, len(z), weights=True)
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)  # (N, num_ws, w_dim)
        if self.training and self.style_mixing > 0:
            ws = self.mix_styles(ws, c)
        return self.synthesis(ws, noise_mode)

    def mix_styles(self, ws: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Style mixing regularisation (StyleGAN, section 3.1; stylegan2-ada loss.py run_G): with probability
        ``style_mixing`` per batch, the layers from a random cutoff in [1, num_ws) on take the w of a second,
        fresh z (same labels; w_avg not updated by it). Draws from torch's global RNG."""
        if torch.rand(()) >= self.style_mixing:
            return ws
        cutoff = int(torch.randint(1, self.num_ws, ()))
        z2 = torch.randn(ws.shape[0], self.z_dim, device=ws.device)
        ws2 = self.mapping(z2, c, update_w_avg=False)
        return torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)


class DiscriminatorBlock(nn.Module):
    """One resolution of D: (fromRGB at the top,) conv 3x3, conv 3x3 with 2x low-pass downsampling, and for
    'resnet' a 1x1 downsampling skip (no bias, no clamp), both branches times sqrt(1/2).
    x (N, C, R, R) or img (N, channels, R, R) -> (N, C', R/2, R/2)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, cfg: StyleGAN2Config):
        super().__init__()
        self.in_channels, self.resnet = in_channels, cfg.d_architecture == "resnet"
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(cfg.channels, tmp_channels, 1, conv_clamp=cfg.conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, conv_clamp=cfg.conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=True, conv_clamp=cfg.conv_clamp)
        if self.resnet:
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, activation="linear", down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(x)  # image -> (N, C, R, R)
        if self.resnet:
            y = self.skip(x, gain=math.sqrt(0.5))
            return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return self.conv1(self.conv0(x))


class DiscriminatorEpilogue(nn.Module):
    """At 4x4, in float32: minibatch stddev, conv 3x3, fc (C*16 -> C), out (C -> 1, or cmap_dim with labels).
    x (N, C, 4, 4), cmap (N, cmap_dim) or None -> logits (N,)."""

    def __init__(self, in_channels: int, cmap_dim: int, cfg: StyleGAN2Config):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(cfg.mbstd_group, cfg.mbstd_channels) if cfg.mbstd_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + cfg.mbstd_channels, in_channels, 3, conv_clamp=cfg.conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, "lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        with float32(x):
            x = x.float()
            if self.mbstd is not None:
                x = self.mbstd(x)  # (N, C + F, 4, 4)
            x = self.fc(self.conv(x).flatten(1))  # (N, C)
            x = self.out(x)  # (N, 1) or (N, cmap_dim)
            if cmap is not None:  # projection onto the mapped label
                x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
            return x.flatten()


class StyleGAN2Discriminator(nn.Module):
    """D(x, c) -> logits (N,), float32 (module docstring)."""

    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        check_channels(cfg.channels)
        _check_widths(cfg)
        self.num_classes = check_num_classes(cfg.num_classes)
        self.resolutions = [2**i for i in range(check_resolution(cfg.resolution), 2, -1)]  # R, ..., 8
        for res in self.resolutions:
            in_channels = channels_at(cfg, res) if res < cfg.resolution else 0
            block = DiscriminatorBlock(in_channels, channels_at(cfg, res), channels_at(cfg, res // 2), cfg)
            setattr(self, f"b{res}", block)
        cmap_dim = 0
        if self.num_classes > 0:
            cmap_dim = cfg.cmap_dim or channels_at(cfg, 4)
            self.mapping = MappingNetwork(0, self.num_classes, cmap_dim, cfg.d_map_layers, cfg.mapping_lr_mult)
        self.b4 = DiscriminatorEpilogue(channels_at(cfg, 4), cmap_dim, cfg)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        # x: (N, channels, R, R), c: (N,) labels or None -> logits (N,)
        c = check_labels(c, self.num_classes, len(x))
        for res in self.resolutions:
            x = getattr(self, f"b{res}")(x)  # (N, C, res/2, res/2)
        cmap = self.mapping(None, c) if c is not None else None  # (N, cmap_dim)
        return self.b4(x, cmap)


def _check_widths(cfg: StyleGAN2Config) -> None:
    cfg.check()
    if channels_at(cfg, cfg.resolution) < 1:
        raise ConfigError(f"model.channel_base {cfg.channel_base} gives no channels at {cfg.resolution} px; "
                          f"it must be at least the resolution")
    if cfg.mbstd_channels > 0 and channels_at(cfg, 4) % cfg.mbstd_channels:
        raise ConfigError(f"model.mbstd_channels {cfg.mbstd_channels} must divide D's {channels_at(cfg, 4)} "
                          f"channels at 4x4")


@register_model("stylegan2", generator=StyleGAN2Generator, discriminator=StyleGAN2Discriminator, data="images")
@dataclass
class StyleGAN2Config:
    """StyleGAN2 options; the defaults are stylegan2-ada-pytorch's ``cifar`` configuration."""

    resolution: int = 32
    channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    map_layers: int = 2  # G's mapping network depth (the StyleGAN2 paper: 8; the cifar configuration: 2)
    mapping_lr_mult: float = 0.01  # learning-rate multiplier of the mapping networks (G's and D's)
    channel_base: int = 32768  # feature maps at resolution r: min(channel_base / r, channel_max)
    channel_max: int = 512
    mbstd_group: int = 32  # minibatch-stddev group size (StyleGAN2: 4; cifar: 32)
    mbstd_channels: int = 1  # minibatch-stddev features; 0 disables the layer
    style_mixing: float = 0.0  # probability of style mixing per training batch (StyleGAN2: 0.9; cifar: 0)
    conv_clamp: float | None = 256.0  # clamp of every convolution's output (the reference's; None: off)
    d_architecture: str = "orig"  # "orig" (cifar) or "resnet" (residual D of StyleGAN2's other configs)
    d_map_layers: int = 8  # depth of D's label mapping network (conditional only)
    cmap_dim: int | None = None  # width of D's mapped label; None: D's channels at 4x4
    noise_mode: str = "random"  # noise outside training: random | const | none (training: always random)
    num_classes: int = 0  # 0: unconditional; K: conditioned on class labels 0..K-1

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Values the types do not catch, checked before any data is loaded."""
        check_option_values(self, positive=("z_dim", "w_dim", "map_layers", "mapping_lr_mult", "channel_base",
                                            "channel_max", "mbstd_group", "d_map_layers"),
                            choices={"d_architecture": D_ARCHITECTURES, "noise_mode": NOISE_MODES})
        if not 0 <= self.style_mixing <= 1:
            raise ConfigError(f"model.style_mixing must be in [0, 1], got {self.style_mixing}")
        if self.mbstd_channels < 0:
            raise ConfigError(f"model.mbstd_channels must be 0 or more, got {self.mbstd_channels}")
        for name in ("conv_clamp", "cmap_dim"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive or None, got {getattr(self, name)}")
