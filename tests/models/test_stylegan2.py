"""StyleGAN2: the published configuration's parameter counts, and the behaviours the architecture is defined
by (demodulation, truncation, style mixing, w_avg, equalised learning rate, noise, minibatch stddev)."""
import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.models.layers import count_parameters
from ganforge.models.stylegan2 import SMALL_OPTIONS, StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator
from ganforge.models.stylegan2_layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MinibatchStdLayer,
    lowpass_filter,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)

TINY = dict(resolution=16, channels=2, z_dim=8, w_dim=8, channel_base=64, channel_max=8, mbstd_group=4,
            d_map_layers=2)


def _tiny(seed=0, **options):
    cfg = StyleGAN2Config(**{**TINY, **options})
    torch.manual_seed(seed)
    return cfg, StyleGAN2Generator(cfg), StyleGAN2Discriminator(cfg)


# Parameter counts of stylegan2-ada-pytorch's `cifar` configuration at 32 px, 3 channels (train.py
# cfg_specs['cifar']: fmaps 1 -> channel_base 32768, channel_max 512, map 2, mbstd 32, conv_clamp 256,
# D architecture 'orig'), obtained by instantiating the reference's training/networks.py Generator and
# Discriminator on the CPU (NVlabs/stylegan2-ada-pytorch @ d72cc7d); 'resnet' is the same D with the
# residual connections of its other configurations; 10 classes use its c_dim=10 (D's label mapping: 8 layers).
REFERENCE_COUNTS = {
    (0, "orig"): (19_947_539, 20_720_641),
    (0, "resnet"): (19_947_539, 21_507_073),
    (10, "orig"): (20_215_315, 23_089_664),
    (10, "resnet"): (20_215_315, 23_876_096),
}


@pytest.mark.parametrize("num_classes, d_architecture", list(REFERENCE_COUNTS))
def test_parameter_counts_of_the_reference_cifar_configuration(num_classes, d_architecture):
    cfg = StyleGAN2Config(num_classes=num_classes, d_architecture=d_architecture)  # defaults: the cifar config
    with torch.device("meta"):  # counting needs no values
        G, D = StyleGAN2Generator(cfg), StyleGAN2Discriminator(cfg)
    assert (count_parameters(G), count_parameters(D)) == REFERENCE_COUNTS[num_classes, d_architecture]
    assert G.num_ws == 8 and count_parameters(G.mapping) == (525_312 if num_classes == 0 else 793_088)


def test_small_cpu_configuration():
    cfg = model_config("stylegan2", **SMALL_OPTIONS)
    G, D = build_generator("stylegan2", cfg), build_discriminator("stylegan2", cfg)
    assert (count_parameters(G), count_parameters(D)) == (384_147, 324_993)


def test_defaults_and_interfaces():
    cfg, G, D = _tiny(num_classes=3)
    assert (G.z_dim, G.w_dim, G.num_ws, G.num_classes, D.num_classes) == (8, 8, 6, 3, 3)  # 16 px: 2*4 - 2 ws
    z, c = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    G.eval()
    ws = G.mapping(z, c)
    assert ws.shape == (5, 6, 8) and torch.equal(ws[:, 0], ws[:, 5])  # broadcast
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), G(z, c, noise_mode="const"))
    defaults = StyleGAN2Config()
    assert (defaults.map_layers, defaults.mbstd_group, defaults.channel_base, defaults.conv_clamp,
            defaults.d_architecture, defaults.style_mixing) == (2, 32, 32768, 256.0, "orig", 0.0)


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
def test_every_resolution(resolution):
    cfg, G, D = _tiny(resolution=resolution, channels=1 + resolution % 4, channel_base=resolution * 2)
    with torch.no_grad():
        x = G(torch.randn(2, 8))
        assert x.shape == (2, cfg.channels, resolution, resolution) and x.dtype == torch.float32
        assert D(x).shape == (2,)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2


@pytest.mark.parametrize("options", [dict(d_architecture="resnet", num_classes=3), dict(conv_clamp=None)])
def test_bfloat16_autocast_runs_and_stays_close_to_float32(options):
    cfg, G, D = _tiny(**options)
    z = torch.randn(4, 8)
    c = torch.arange(4) % 3 if cfg.num_classes else None
    G.eval(), D.eval()
    with torch.no_grad():
        x32, d32 = G(z, c, noise_mode="const"), D(G(z, c, noise_mode="const"), c)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            x16 = G(z, c, noise_mode="const")
            d16 = D(x16, c)
    assert x16.dtype == d16.dtype == torch.float32  # images summed and the epilogue run in float32
    assert (x16 - x32).abs().max() < 0.1 * x32.abs().max() and (d16 - d32).abs().max() < 0.1 * d32.abs().max() + 0.05


def test_demodulation_gives_unit_variance_per_output_channel():
    """Paper section 2.2: with unit-variance inputs, w''_oi = s_i w_oi / sqrt(sum (s_i w_oik)^2) gives each output
    channel unit variance whatever the styles; without demodulation the scale follows the styles."""
    gen = torch.Generator().manual_seed(0)
    n, i, o = 8, 64, 16
    x = torch.randn(n, i, 24, 24, generator=gen)
    weight = torch.randn(o, i, 3, 3, generator=gen)
    styles = torch.exp(torch.randn(n, i, generator=gen) * 1.5)  # styles spread over orders of magnitude
    y = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # interior: no zero padding
    std = y.transpose(0, 1).reshape(o, -1).std(dim=1)  # per output channel over samples and pixels
    assert ((std > 0.9) & (std < 1.1)).all(), std
    per_sample = y.std(dim=(2, 3))  # every sample, every channel: (N, O)
    assert ((per_sample > 0.8) & (per_sample < 1.2)).all()
    raw = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 1:-1, 1:-1]
    assert raw.std() > 5  # the styles' scale, which demodulation removes


@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_equals_grouped_convolution_with_per_sample_weights(up):
    """The activation-scaling form equals the definition: per-sample weights w'' in one grouped convolution."""
    gen = torch.Generator().manual_seed(1)
    n, i, o = 3, 5, 4
    x, weight = torch.randn(n, i, 6, 6, generator=gen), torch.randn(o, i, 3, 3, generator=gen)
    styles = torch.randn(n, i, generator=gen)
    f = lowpass_filter()
    w = weight[None] * styles[:, None, :, None, None]  # (N, O, I, 3, 3)
    w = w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    if up:  # grouped transposed convolution: weight (N * I, O, 3, 3)
        grouped = F.conv_transpose2d(x.reshape(1, n * i, 6, 6), w.transpose(1, 2).reshape(n * i, o, 3, 3),
                                     stride=2, groups=n)
        grouped = upfirdn2d(grouped, f, pad=(1, 1, 1, 1), gain=4)
    else:
        grouped = F.conv2d(x.reshape(1, n * i, 6, 6), w.reshape(n * o, i, 3, 3), padding=1, groups=n)
    expected = grouped.reshape(n, o, *grouped.shape[2:])
    torch.testing.assert_close(modulated_conv2d(x, weight, styles, up=up, resample_filter=f), expected)
    assert expected.shape[2:] == ((12, 12) if up else (6, 6))


def test_upsampling_keeps_a_constant_image_constant():
    """The [1, 3, 3, 1] filter with gain 4 after zero insertion: a constant input stays constant inside."""
    y = upsample2d(torch.full((1, 1, 6, 6), 2.0), lowpass_filter())
    assert y.shape == (1, 1, 12, 12)
    torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.full((1, 1, 8, 8), 2.0))


def test_truncation_psi_zero_returns_w_avg_for_every_sample():
    cfg, G, _ = _tiny()
    G.mapping.w_avg.normal_()
    z = torch.randn(6, 8)
    ws = G.mapping(z, None, truncation_psi=0)
    torch.testing.assert_close(ws, G.mapping.w_avg.expand(6, G.num_ws, 8))
    G.eval()
    x = G(z, truncation_psi=0, noise_mode="const")
    torch.testing.assert_close(x, x[:1].expand_as(x))  # one image: w_avg's
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    full = G.mapping(z, None)
    torch.testing.assert_close(cut[:, :2], G.mapping.w_avg + 0.5 * (full[:, :2] - G.mapping.w_avg))
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])


def test_w_avg_moves_only_in_training_mode():
    cfg, G, _ = _tiny(style_mixing=1.0)
    z = torch.randn(6, 8)
    G.eval()
    G(z)
    assert torch.equal(G.mapping.w_avg, torch.zeros(8))
    G.train()
    w = G.mapping(z, None, update_w_avg=False)[:, 0]
    G(z)  # style mixing maps a second z: that one must not move w_avg
    torch.testing.assert_close(G.mapping.w_avg, w.mean(0) * (1 - 0.995))
    before = G.mapping.w_avg.clone()
    G.mapping(z, None)
    torch.testing.assert_close(G.mapping.w_avg, w.mean(0).lerp(before, 0.995))


def _ws_seen_by_synthesis(G, z):
    seen = []
    handle = G.synthesis.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    G(z)
    handle.remove()
    return seen[0]


def test_style_mixing_only_in_training_mode():
    cfg, G, _ = _tiny(style_mixing=1.0)
    z = torch.randn(4, 8)
    G.eval()
    ws = _ws_seen_by_synthesis(G, z)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))  # eval: one w for every layer
    G.train()
    cutoffs = set()
    for _ in range(8):
        ws = _ws_seen_by_synthesis(G, z)
        same = (ws == ws[:, :1]).all(dim=2).all(dim=0)  # (num_ws,): layers still using z's w
        cutoff = int(same.sum())
        assert 1 <= cutoff < G.num_ws and same[:cutoff].all() and not same[cutoff:].any()
        assert torch.equal(ws[:, cutoff:], ws[:, -1:].expand_as(ws[:, cutoff:]))  # one second w per sample
        cutoffs.add(cutoff)
    assert len(cutoffs) > 1  # the cutoff is drawn
    _, G0, _ = _tiny(style_mixing=0.0)
    G0.train()
    ws = _ws_seen_by_synthesis(G0, z)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))


def test_equalised_learning_rate_runtime_scale():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(256, 128, lr_mult=0.01)
    assert fc.weight_gain == pytest.approx(0.01 / 16) and fc.bias_gain == 0.01
    assert fc.weight.std().item() == pytest.approx(100, rel=0.02)  # stored N(0, 1 / lr_mult^2)
    x = torch.randn(4, 256)
    torch.testing.assert_close(fc(x), x @ (fc.weight * 0.01 / 16).t() + fc.bias * 0.01)
    assert fc(torch.randn(2000, 256)).std().item() == pytest.approx(1, rel=0.05)  # effective weights N(0, 1/fan_in)
    conv = Conv2dLayer(32, 16, 3, activation="linear")
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(32 * 9))
    assert conv.weight.std().item() == pytest.approx(1, rel=0.05)
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight / math.sqrt(288), conv.bias, padding=1))
    cfg, G, D = _tiny()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):  # every weight stored at unit scale
        if name.endswith("weight") and p.numel() >= 64:  # (the mapping's at 1 / lr_mult)
            expected = 1 / cfg.mapping_lr_mult if name.startswith("mapping.fc") else 1.0
            assert p.std().item() == pytest.approx(expected, rel=0.3), name


def test_noise_inputs():
    cfg, G, _ = _tiny()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    z = torch.randn(3, 8)
    G.train()
    assert not torch.equal(G(z), G(z))  # fresh noise
    G.eval()
    assert not torch.equal(G(z), G(z))  # noise_mode 'random' outside training too (the reference's default) ...
    torch.manual_seed(7)
    a = G(z)
    torch.manual_seed(7)
    assert torch.equal(a, G(z))  # ... reproducible by seeding torch, as `ganforge sample` does
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert torch.equal(G(z, noise_mode="none"), G(z, noise_mode="none"))
    _, Gc, _ = _tiny(noise_mode="const")
    Gc.load_state_dict(G.state_dict())  # noise_const maps are saved with the weights
    Gc.eval()
    assert torch.equal(Gc(z), G(z, noise_mode="const"))


@pytest.mark.parametrize("n, group, used", [(8, 4, 4), (6, 4, 3), (5, 4, 1), (3, 32, 3)])
def test_minibatch_stddev_groups(n, group, used):
    x = torch.randn(n, 6, 4, 4)
    y = MinibatchStdLayer(group, num_channels=2)(x)
    assert y.shape == (n, 8, 4, 4) and torch.equal(y[:, :6], x)
    groups = x.reshape(used, n // used, 2, 3, 4, 4)  # sample i grouped with i + k * n / used
    std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n / used, 2)
    torch.testing.assert_close(y[:, 6:, 0, 0], std.repeat(used, 1))


def test_conditional_discriminator_projects_onto_the_mapped_label():
    cfg, _, D = _tiny(num_classes=3)
    assert D.b4.out.weight.shape == (8, 8) and D.mapping.num_layers == 2  # out: cmap_dim units
    x, c = torch.randn(4, 2, 16, 16), torch.tensor([0, 1, 2, 1])
    features = {}
    D.b4.out.register_forward_hook(lambda m, args, out: features.update(out=out))
    logits = D(x, c)
    cmap = D.mapping(None, c)
    torch.testing.assert_close(logits, (features["out"] * cmap).sum(1) / math.sqrt(8))
    assert not torch.equal(D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.ones(4, dtype=torch.long)))


def test_no_normalisation_layers_and_samples_independent_without_mbstd():
    _, G, D = _tiny(mbstd_channels=0, d_architecture="resnet")
    kinds = {type(m).__name__ for m in list(G.modules()) + list(D.modules())}
    assert not any("Norm" in kind for kind in kinds)
    x = torch.randn(4, 2, 16, 16)
    torch.testing.assert_close(D(x)[:2], D(x[:2]))


def test_deterministic_construction_and_r1_double_backward():
    _, G1, D1 = _tiny(seed=3)
    _, G2, D2 = _tiny(seed=3)
    for a, b in ((G1, G2), (D1, D2)):
        for (name, t1), t2 in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(t1, t2), name
    x = torch.randn(4, 2, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(D1(x).sum(), x, create_graph=True)  # R1 needs second derivatives
    grad.square().sum().backward()
    assert all(p.grad is not None for name, p in D1.named_parameters() if name.endswith("weight"))


@pytest.mark.parametrize("option, value", [("style_mixing", 1.5), ("d_architecture", "skip"), ("noise_mode", "fixed"),
                                           ("conv_clamp", 0.0), ("map_layers", 0), ("mbstd_channels", -1)])
def test_bad_options_rejected(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}"):
        model_config("stylegan2", **{option: value}).check()


def test_widths_that_cannot_be_built_are_rejected():
    with pytest.raises(ConfigError, match="channel_base"):
        build_generator("stylegan2", model_config("stylegan2", resolution=64, channel_base=32))
    with pytest.raises(ConfigError, match="mbstd_channels"):
        build_discriminator("stylegan2", model_config("stylegan2", **TINY, mbstd_channels=3))
