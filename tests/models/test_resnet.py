"""SNGAN ResNet networks (ganforge.models.resnet): reference parameter counts, layout, conditional
variants, spectral norm, precision and the model contract on tiny configurations."""
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ganforge.errors import ConfigError
from ganforge.models import registry
from ganforge.models.layers import ConditionalNorm2d, count_parameters
from ganforge.training.checkpoint import module_state

from ganforge.models import resnet
from ganforge.models.resnet import (
    GBlock,
    ResNetConfig,
    ResNetDiscriminator,
    ResNetGenerator,
    discriminator_blocks,
    generator_widths,
    resolved_layout,
)


K = 3
N = 4
TINY = dict(resolution=16, channels=2, z_dim=8, g_width=8, d_width=4)  # for the contract tests' TINY table


def _build(num_classes=0, seed=0, **options):
    cfg = ResNetConfig(**{**TINY, **options}, num_classes=num_classes)
    torch.manual_seed(seed)
    return cfg, ResNetGenerator(cfg), ResNetDiscriminator(cfg)


def _inputs(cfg, num_classes, n=N, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, cfg.z_dim, generator=gen)
    c = torch.randint(num_classes, (n,), generator=gen) if num_classes else None
    return z, c


# ------------------------------------------------------------------ reference configurations


def _conv(w_in, w_out, k):
    return w_in * w_out * k * k + w_out


def _reference_counts(z_dim, g_widths, d_blocks, channels=3, num_classes=0):
    """Parameters of the reference networks, counted from their layer lists (mimicry resblocks / Chainer):
    G: linear, up-blocks (2 BN or conditional BN, conv3x3 in->out, conv3x3 out->out, 1x1 shortcut),
    BN, conv3x3 to the image; D: optimised block, blocks (hidden width = input width), linear, embedding."""
    bn = (lambda w: 2 * w * num_classes) if num_classes else (lambda w: 2 * w)
    g = z_dim * 16 * g_widths[0] + 16 * g_widths[0]
    for w_in, w_out in zip(g_widths[:-1], g_widths[1:]):
        g += bn(w_in) + _conv(w_in, w_out, 3) + bn(w_out) + _conv(w_out, w_out, 3) + _conv(w_in, w_out, 1)
    g += 2 * g_widths[-1] + _conv(g_widths[-1], channels, 3)
    (w0, _), rest = d_blocks[0], d_blocks[1:]
    d = _conv(channels, w0, 3) + _conv(w0, w0, 3) + _conv(channels, w0, 1)
    w_in = w0
    for w_out, halves in rest:
        d += _conv(w_in, w_in, 3) + _conv(w_in, w_out, 3) + (_conv(w_in, w_out, 1) if w_in != w_out or halves else 0)
        w_in = w_out
    d += w_in + 1 + num_classes * w_in
    return g, d


# (resolution, num_classes) -> (G, D) parameters of mimicry's models at their defaults, 3 channels, obtained by
# instantiating torch_mimicry.nets.sngan.SNGANGenerator32/Discriminator32, ...64, ...128 and
# cgan_pd.CGANPDGenerator32/Discriminator32(num_classes=10) on the CPU (mimicry commit a7fda06).
MIMICRY = {
    (32, 0): (4_276_739, 1_053_825),  # SNGAN 32: "4.28M / 1.05M"
    (64, 0): (12_220_675, 10_141_441),
    (128, 0): (32_150_787, 29_017_857),
    (32, 10): (4_304_387, 1_055_105),  # cGAN-PD 32 (conditional BN, projection)
}


@pytest.mark.parametrize("resolution, num_classes", list(MIMICRY))
def test_reference_parameter_counts(resolution, num_classes):
    cfg = ResNetConfig(resolution=resolution, num_classes=num_classes)  # defaults = the reference
    G, D = ResNetGenerator(cfg), ResNetDiscriminator(cfg)
    assert (count_parameters(G), count_parameters(D)) == MIMICRY[resolution, num_classes]


def test_reference_layer_lists_give_the_mimicry_counts_and_the_chainer_256_px_model():
    ch = 64
    assert _reference_counts(128, [256] * 4, [(128, True)] * 2 + [(128, False)] * 2) == MIMICRY[32, 0]
    assert _reference_counts(128, [256] * 4, [(128, True)] * 2 + [(128, False)] * 2, num_classes=10) == MIMICRY[32, 10]
    assert _reference_counts(128, [16 * ch, 8 * ch, 4 * ch, 2 * ch, ch],
                             [(m * ch, True) for m in (1, 2, 4, 8, 16)]) == MIMICRY[64, 0]
    # Chainer sngan_projection resnet_256 / snresnet_256 (mimicry has no 256 px model)
    g256, d256 = _reference_counts(128, [m * ch for m in (16, 16, 8, 8, 4, 2, 1)],
                                   [(m * ch, True) for m in (1, 2, 4, 8, 8, 16)] + [(16 * ch, False)])
    cfg = ResNetConfig(resolution=256)
    assert generator_widths(cfg) == [m * ch for m in (16, 16, 8, 8, 4, 2, 1)]
    assert (count_parameters(ResNetGenerator(cfg)), count_parameters(ResNetDiscriminator(cfg))) == (g256, d256)


def test_reference_32px_layout():
    cfg = ResNetConfig()
    assert (cfg.z_dim, cfg.g_width, cfg.d_width, resolved_layout(cfg)) == (128, 256, 128, "constant")
    G, D = ResNetGenerator(cfg), ResNetDiscriminator(cfg)
    assert G.linear.out_features == 16 * 256 and len(G.blocks) == 3
    assert [(b.halves, b.shortcut is not None) for b in D.blocks] == [(True, True), (True, True), (False, False),
                                                                       (False, False)]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert D.blocks[:2](x).shape == (2, 128, 8, 8) and D.blocks(x).shape == (2, 128, 8, 8)


@pytest.mark.parametrize("resolution, layout", [(16, "constant"), (32, "constant"), (64, "pyramid"),
                                                (128, "pyramid"), (256, "pyramid")])
def test_auto_layout_follows_the_reference(resolution, layout):
    assert resolved_layout(ResNetConfig(resolution=resolution)) == layout
    assert resolved_layout(ResNetConfig(resolution=resolution, layout="pyramid")) == "pyramid"
    assert resolved_layout(ResNetConfig(resolution=resolution, layout="constant")) == "constant"


def test_layout_widths():
    assert generator_widths(ResNetConfig(resolution=16)) == [256] * 3
    constant_64 = ResNetConfig(resolution=64, layout="constant")
    assert discriminator_blocks(constant_64) == [(128, True)] * 3 + [(128, False)] * 2
    assert generator_widths(ResNetConfig(resolution=128)) == [1024, 1024, 512, 256, 128, 64]
    assert discriminator_blocks(ResNetConfig(resolution=128)) == [(64, True), (128, True), (256, True), (512, True),
                                                                  (1024, True), (1024, False)]
    # pyramid widths scale with g_width / 4 and d_width / 2
    assert generator_widths(ResNetConfig(resolution=64, g_width=8)) == [32, 16, 8, 4, 2]
    assert [w for w, _ in discriminator_blocks(ResNetConfig(resolution=64, d_width=4))] == [2, 4, 8, 16, 32]


# ------------------------------------------------------------------ structure


def test_spectral_norm_on_every_discriminator_layer_and_no_batchnorm():
    _, G, D = _build(num_classes=K)
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert len(layers) == 3 + 2 + 2 + 1 + 1  # 16 px: optimised block, two blocks at 8x8, linear, embedding
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in D.modules())
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in G.modules())  # no SN in G (reference)


def test_discriminator_keeps_samples_independent():
    cfg, _, D = _build(num_classes=K)
    x, c = torch.randn(N, 2, 16, 16), torch.arange(N) % K
    D.eval()  # in training mode each forward also takes a power-iteration step
    torch.testing.assert_close(D(x, c)[:2], D(x[:2], c[:2]))


def test_initialisation():
    _, G, D = _build(num_classes=K)
    biases = [p for name, p in list(G.named_parameters()) + list(D.named_parameters()) if name.endswith(".bias")
              and "norm" not in name]
    assert biases and all(torch.equal(b, torch.zeros_like(b)) for b in biases)  # Chainer: zero biases
    cond = [m for m in G.modules() if isinstance(m, ConditionalNorm2d)]
    assert len(cond) == 2 * len(G.blocks) and isinstance(G.norm, torch.nn.BatchNorm2d)  # last BN unconditional
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in cond)


def test_shortcut_order_does_not_change_the_function():
    """The shortcuts apply the 1x1 conv before nearest upsampling (G) and after average pooling (D); the reference's
    order (upsample, then conv; conv, then pool) gives the same function."""
    torch.manual_seed(0)
    block = GBlock(3, 5, num_classes=0)
    x = torch.randn(2, 3, 4, 4)
    reference = block.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(F.interpolate(block.shortcut(x), scale_factor=2, mode="nearest"), reference)
    _, _, D = _build()
    conv = D.blocks[0].shortcut  # the optimised block's: pooling, then its 1x1 conv
    h = torch.randn(2, 2, 8, 8)
    torch.testing.assert_close(conv(F.avg_pool2d(h, 2)), F.avg_pool2d(conv(h), 2))


def test_discriminator_shortcut_sees_the_input_before_the_relu():
    """Paper and Chainer: block(x) = residual(x) + x (identity shortcut), not + relu(x)."""
    _, _, D = _build()
    block = D.blocks[-1]
    assert block.shortcut is None
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        residual = block.conv2(F.relu(block.conv1(F.relu(x))))
        torch.testing.assert_close(block(x), residual + x)


# ------------------------------------------------------------------ contract on tiny configurations


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("num_classes", [0, K])
def test_shapes_for_every_resolution_and_channel_count(resolution, channels, num_classes):
    cfg, G, D = _build(num_classes, resolution=resolution, channels=channels, g_width=4, d_width=2)
    z, c = _inputs(cfg, num_classes, n=2)
    assert G.z_dim == 8 and G.num_classes == D.num_classes == num_classes
    with torch.no_grad():
        x = G(z, c)
        logits = D(x, c)
    assert x.shape == (2, channels, resolution, resolution) and x.abs().max() <= 1.0  # tanh
    assert logits.shape == (2,) and logits.dtype == torch.float32 and torch.isfinite(logits).all()


@pytest.mark.parametrize("num_classes", [0, K])
def test_bfloat16_autocast_forward_and_backward(num_classes):
    cfg, G, D = _build(num_classes)
    z, c = _inputs(cfg, num_classes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = G(z, c)
        logits = D(x, c)
        loss = F.relu(1 - logits.float()).mean()  # hinge, D on fakes called real
    loss.backward()
    assert x.shape == (N, 2, 16, 16) and logits.shape == (N,) and torch.isfinite(logits.float()).all()
    for net in (G, D):
        assert all(p.dtype == torch.float32 for p in net.parameters())
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_deterministic_construction():
    _, G1, D1 = _build(num_classes=K, seed=5)
    _, G2, D2 = _build(num_classes=K, seed=5)
    for a, b in [(G1, G2), (D1, D2)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    _, G3, _ = _build(num_classes=K, seed=6)
    assert not torch.equal(G3.linear.weight, G1.linear.weight)


def test_labels_are_checked():
    cfg, G, D = _build()
    z, _ = _inputs(cfg, 0)
    labels = torch.zeros(N, dtype=torch.long)
    with pytest.raises(ValueError, match="unconditional"):
        G(z, labels)
    with pytest.raises(ValueError, match="unconditional"):
        D(G(z), labels)
    _, G, D = _build(num_classes=K)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)
    with pytest.raises(ValueError, match="class-conditional"):
        D(torch.randn(N, 2, 16, 16))


def test_conditional_generator_uses_the_label():
    cfg, G, _ = _build(num_classes=K)
    z, _ = _inputs(cfg, K)
    G.eval()
    with torch.no_grad():  # at initialisation every class is plain BatchNorm
        torch.testing.assert_close(G(z, torch.zeros(N, dtype=torch.long)), G(z, torch.full((N,), 2)))
        for m in G.modules():
            if isinstance(m, ConditionalNorm2d):
                m.weight.add_(torch.randn_like(m.weight), alpha=0.2)
                m.bias.add_(torch.randn_like(m.bias), alpha=0.2)
        x0, x1 = G(z, torch.zeros(N, dtype=torch.long)), G(z, torch.ones(N, dtype=torch.long))
    assert (x0 - x1).flatten(1).abs().amax(1).min() > 0


def test_conditional_discriminator_is_the_unconditional_one_plus_a_projection():
    _, _, D0 = _build()
    _, _, DK = _build(num_classes=K)
    state0, stateK = D0.state_dict(), DK.state_dict()
    assert [key for key in stateK if key in state0] == list(state0)
    assert all(key.startswith("embed.") for key in stateK if key not in state0)
    assert count_parameters(DK) - count_parameters(D0) == K * 4  # one d_width vector per class
    x, c = torch.randn(N, 2, 16, 16), torch.arange(N) % K
    DK.eval()
    with torch.no_grad():
        by_class = torch.stack([DK(x, torch.full((N,), j)) for j in range(K)])
        assert (by_class[0] != by_class[1]).all()
        # projection = <embed(c), h> with h the sum-pooled features
        h = F.relu(DK.blocks(x)).sum(dim=(2, 3))
        torch.testing.assert_close(DK(x, c), DK.linear(h).flatten() + (DK.embed(c) * h).sum(1))
        D0.load_state_dict({key: stateK[key] for key in state0})
        D0.eval()
        torch.nn.utils.parametrize.remove_parametrizations(DK.embed, "weight")
        DK.embed.weight.zero_()
        torch.testing.assert_close(DK(x, c), D0(x), rtol=0, atol=0)


@pytest.mark.parametrize("num_classes", [0, K])
def test_safetensors_round_trip(num_classes, tmp_path):
    cfg, G, D = _build(num_classes)
    z, c = _inputs(cfg, num_classes)
    D(G(z, c), c)  # training mode: BatchNorm statistics and power-iteration vectors move
    for name, net in [("G", G), ("D", D)]:
        save_file(module_state(net), str(tmp_path / f"{name}.safetensors"))
    _, G2, D2 = _build(num_classes, seed=123)
    G2.load_state_dict(load_file(str(tmp_path / "G.safetensors")))
    D2.load_state_dict(load_file(str(tmp_path / "D.safetensors")))
    for net in (G, D, G2, D2):
        net.eval()
    with torch.no_grad():
        x = G(z, c)
        torch.testing.assert_close(G2(z, c), x, rtol=0, atol=0)
        torch.testing.assert_close(D2(x, c), D(x, c), rtol=0, atol=0)


@pytest.mark.parametrize("num_classes", [0, K])
def test_one_hinge_step_improves_each_network(num_classes):
    cfg, G, D = _build(num_classes)
    z, c = _inputs(cfg, num_classes)
    real = torch.rand(N, 2, 16, 16) * 2 - 1
    G.eval(), D.eval()  # fixed functions of the weights (no batch statistics or power iterations)
    d_loss = lambda: F.relu(1 - D(real, c)).mean() + F.relu(1 + D(G(z, c).detach(), c)).mean()  # noqa: E731
    g_loss = lambda: -D(G(z, c), c).mean()  # noqa: E731
    for net, loss_fn in [(D, d_loss), (G, g_loss)]:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.0, 0.9))
        before = loss_fn()
        opt.zero_grad()
        before.backward()
        assert all(p.grad is not None for p in net.parameters())
        opt.step()
        with torch.no_grad():
            assert loss_fn() < before


# ------------------------------------------------------------------ config


def test_registered_config():
    cfg = registry.model_config("resnet", **TINY)
    assert registry.model_spec("resnet") == (ResNetConfig, ResNetGenerator, ResNetDiscriminator, "images")
    assert cfg.to_dict() == {**TINY, "layout": "auto", "num_classes": 0}
    assert registry.config_fields("resnet") == dict(resolution=32, channels=3, z_dim=128, g_width=256, d_width=128,
                                                    layout="auto", num_classes=0)
    G = registry.build_generator("resnet", cfg)
    assert isinstance(G, ResNetGenerator)
    section = registry.model_section("resnet")
    registry.check_section(section)
    assert registry.section_options(section) == dict(z_dim=128, g_width=256, d_width=128, layout="auto")


@pytest.mark.parametrize("options, message", [
    (dict(g_width=0), "g_width must be positive"),
    (dict(layout="pyramidal"), "did you mean 'pyramid'"),
    (dict(layout="pyramid", g_width=6), "g_width must be a multiple of 4"),
    (dict(layout="pyramid", d_width=3), "d_width must be a multiple of 2"),
])
def test_check(options, message):
    with pytest.raises(ConfigError, match=message):
        ResNetConfig(**options).check()


def test_bad_values_fail_at_construction():
    with pytest.raises(ConfigError, match="g_width must be a multiple of 4"):
        ResNetGenerator(ResNetConfig(resolution=64, g_width=6))  # auto -> pyramid at 64 px
    with pytest.raises(ConfigError, match="power of two"):
        ResNetGenerator(ResNetConfig(resolution=48))
    with pytest.raises(ConfigError, match="channels"):
        ResNetDiscriminator(ResNetConfig(channels=5))
    with pytest.raises(ConfigError, match="num_classes"):
        ResNetGenerator(ResNetConfig(num_classes=-1))


def test_module_documents_its_reference():
    assert "Miyato" in resnet.__doc__ and "mimicry" in resnet.__doc__
