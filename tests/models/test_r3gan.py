"""R3GAN (Huang et al., NeurIPS 2024): parameter counts of the reference presets, fix-up initialisation,
the [1, 3, 3, 1] resampler, gradient flow, conditioning and every resolution/channel count."""
import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.models import build_discriminator, build_generator, config_fields, model_config
from ganforge.models.layers import count_parameters
from ganforge.models.r3gan import (
    SMALL_OPTIONS,
    LRELU_GAIN,
    R3GANConfig,
    Resample,
    ResidualBlock,
    stage_widths,
)

TINY = dict(resolution=16, channels=2, z_dim=8, width=8, group_channels=4, blocks=1)
K = 3


def _nets(seed=0, **options):
    cfg = model_config("r3gan", **{**TINY, **options})
    torch.manual_seed(seed)
    return cfg, build_generator("r3gan", cfg), build_discriminator("r3gan", cfg)


def _inputs(cfg, n=4, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, cfg.z_dim, generator=gen)
    c = torch.randint(cfg.num_classes, (n,), generator=gen) if cfg.num_classes else None
    return z, c


# ------------------------------------------------------------------ reference configuration


@pytest.mark.parametrize("num_classes, g_params, d_params", [
    (10, 20_781_952, 21_280_512),  # the CIFAR-10 run (README: --cond=1): the paper's 20.78M / 21.28M
    (0, 20_732_160, 20_683_776),  # the same preset unconditional (train.py without --cond)
])
def test_reference_cifar10_parameter_counts(num_classes, g_params, d_params):
    """Integers from instantiating brownvc/R3GAN R3GAN/Networks.py with train.py's CIFAR10 preset."""
    cfg = model_config("r3gan", num_classes=num_classes)
    assert (cfg.resolution, cfg.channels, cfg.z_dim, cfg.width, cfg.blocks) == (32, 3, 64, 768, 2)
    assert count_parameters(build_generator("r3gan", cfg)) == g_params
    assert count_parameters(build_discriminator("r3gan", cfg)) == d_params


def test_small_cpu_configuration_parameter_counts():
    cfg = model_config("r3gan", **SMALL_OPTIONS)
    assert stage_widths(cfg) == [128, 128, 64, 32]
    assert count_parameters(build_generator("r3gan", cfg)) == 274_912
    assert count_parameters(build_discriminator("r3gan", cfg)) == 266_848
    cfg = model_config("r3gan", **SMALL_OPTIONS, num_classes=10)
    assert count_parameters(build_generator("r3gan", cfg)) == 274_912 + 10 * 64 + 64 * 128  # embedding, wider z input
    # the output layer maps to 128 values instead of 1; the embedding
    assert count_parameters(build_discriminator("r3gan", cfg)) == 266_848 + 128 * 127 + 10 * 128


def test_stage_rule_reproduces_the_reference_presets():
    """One stage per resolution 4..R; `width` up to 32 px, halved per doubling above (FFHQ-64 and FFHQ-256)."""
    assert stage_widths(R3GANConfig()) == [768] * 4  # CIFAR10
    assert stage_widths(R3GANConfig(resolution=16)) == [768] * 3
    assert stage_widths(R3GANConfig(resolution=64)) == [768] * 4 + [384]  # FFHQ-64
    assert stage_widths(R3GANConfig(resolution=256)) == [768] * 4 + [384, 192, 96]  # FFHQ-256
    assert stage_widths(R3GANConfig(resolution=64, width=1536, full_width_until=64)) == [1536] * 5  # ImageNet-64
    G = build_generator("r3gan", model_config("r3gan", resolution=256, width=64))
    convs = [m.conv for m in G.modules() if isinstance(m, ResidualBlock)]
    assert [c.groups for c in convs] == [8] * 8 + [4, 4, 2, 2, 1, 1]  # hidden // 16 channels per group


# ------------------------------------------------------------------ shapes, conditioning, precision


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_every_resolution_and_channel_count(resolution, channels):
    cfg, G, D = _nets(resolution=resolution, channels=channels, width=4, num_classes=K if channels % 2 else 0)
    z, c = _inputs(cfg, n=2)
    with torch.no_grad():
        x = G(z, c)
        logits = D(x, c)
    assert x.shape == (2, channels, resolution, resolution) and torch.isfinite(x).all()
    assert logits.shape == (2,) and logits.dtype == torch.float32
    assert len(G.stages) == len(D.stages) == int(math.log2(resolution)) - 1


@pytest.mark.parametrize("num_classes", [0, K])
def test_bfloat16_autocast(num_classes):
    cfg, G, D = _nets(num_classes=num_classes)
    z, c = _inputs(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = G(z, c)
        logits = D(x, c)
    assert x.shape == (4, 2, 16, 16) and logits.shape == (4,)
    assert torch.isfinite(x.float()).all() and torch.isfinite(logits.float()).all()
    with torch.no_grad():
        torch.testing.assert_close(x.float(), G(z, c), atol=0.1, rtol=0.05)


def test_linear_output_is_not_squashed():
    """The reference has no tanh: G's last layer is a 1x1 convolution (callers clamp when converting to pixels)."""
    cfg, G, _ = _nets()
    assert G.bounded_output is False
    with torch.no_grad():
        G.out.weight.mul_(100)
        assert G(*_inputs(cfg)).abs().max() > 1


def test_conditioning_is_the_references():
    cfg, G, D = _nets(num_classes=K)
    assert G.embed.weight.shape == (K, cfg.z_dim)  # concatenated to z
    assert G.stages[0][0].linear.in_features == 2 * cfg.z_dim
    basis = D.stages[-1][-1]
    assert D.embed.weight.shape == (K, 8) and basis.linear.weight.shape == (8, 8)  # logit = <linear(h), embed(c)>
    z, _ = _inputs(cfg)
    with torch.no_grad():  # the label acts from initialisation on, through the basis
        x0, x1 = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.ones(4, dtype=torch.long))
        assert (x0 - x1).flatten(1).abs().amax(1).min() > 0
        features = []  # the output of D's last linear layer, (N, 8)
        hook = basis.linear.register_forward_hook(lambda module, inputs, output: features.append(output))
        c = torch.tensor([0, 1, 2, 1])
        logits = D(x0, c)
        hook.remove()
        torch.testing.assert_close(logits, (features[0] * D.embed(c)).sum(1))
    cfg, G, D = _nets(num_classes=K, g_embed_dim=5, d_embed_dim=6)
    assert G.embed.weight.shape == (K, 5) and D.embed.weight.shape == (K, 6)


def test_no_normalisation_and_bias_free_layers():
    _, G, D = _nets(num_classes=K)
    for net in (G, D):
        assert not any("Norm" in type(m).__name__ for m in net.modules())
        assert all(m.bias is None for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
        assert set(net.state_dict()) == {n for n, _ in net.named_parameters()}  # the filter is no weight
    x, c = torch.randn(4, 2, 16, 16), torch.arange(4) % K
    torch.testing.assert_close(D(x, c)[:2], D(x[:2], c[:2]))  # each sample's logit is its own


def test_construction_is_deterministic():
    _, G1, D1 = _nets(seed=5, num_classes=K)
    _, G2, D2 = _nets(seed=5, num_classes=K)
    for a, b in [(G1, G2), (D1, D2)]:
        for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
            assert torch.equal(p, q), n


# ------------------------------------------------------------------ fix-up initialisation and gradients


def test_every_residual_block_is_the_identity_at_initialisation():
    _, G, D = _nets(resolution=32, width=16, blocks=2)
    blocks = [m for net in (G, D) for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2 * 4 * 2
    for block in blocks:
        x = torch.randn(3, block.expand.in_channels, 8, 8)
        assert torch.count_nonzero(block.project.weight) == 0
        assert torch.equal(block.branch(x), torch.zeros_like(x))
        assert torch.equal(block(x), x)


def test_fixup_scaling_of_the_branch_weights():
    """N(0, (gain / sqrt(fan_in))^2) with gain = sqrt(2 / 1.04) * L^(-1/4), L = all blocks of the network."""
    cfg, G, _ = _nets(resolution=32, width=64, group_channels=16, blocks=2)
    block = G.stages[1][1]
    scale = LRELU_GAIN * 8 ** -0.25
    for conv, fan_in in [(block.expand, 64), (block.conv, 16 * 9)]:
        assert conv.weight.std().item() == pytest.approx(scale / math.sqrt(fan_in), rel=0.05)
    assert G.stages[0][0].basis.std().item() == pytest.approx(1, rel=0.05)


@pytest.mark.parametrize("num_classes", [0, K])
def test_gradient_reaches_every_parameter_from_the_second_step(num_classes):
    """The zero projection blocks the branch's gradient on the first step only, as in the reference."""
    cfg, G, D = _nets(num_classes=num_classes, blocks=2)
    z, c = _inputs(cfg)
    target = torch.rand(4, 2, 16, 16) * 2 - 1
    for net, loss_fn in [(G, lambda: F.mse_loss(G(z, c), target)), (D, lambda: F.softplus(-D(target, c)).mean())]:
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        inner = {n for n, _ in net.named_parameters() if any(k in n for k in (".expand.", ".conv.", ".act"))}
        assert inner
        for step in range(2):
            opt.zero_grad()
            loss_fn().backward()
            for n, p in net.named_parameters():
                assert p.grad is not None, n
                assert (torch.count_nonzero(p.grad) == 0) == (step == 0 and n in inner), (step, n)
            opt.step()


def test_r1_and_r2_penalties_differentiate_through_d():
    """The recipe's zero-centred penalties need a second derivative through every layer of D."""
    cfg, G, D = _nets(num_classes=K)
    z, c = _inputs(cfg)
    real = torch.randn(4, 2, 16, 16).requires_grad_(True)
    fake = G(z, c).detach().requires_grad_(True)
    penalty = 0
    for x in (real, fake):
        (grad,) = torch.autograd.grad(D(x, c).sum(), x, create_graph=True)
        penalty = penalty + grad.square().sum([1, 2, 3]).mean()
    penalty.backward()
    assert all(p.grad is not None for p in D.parameters())
    assert D.inp.weight.grad.abs().sum() > 0 and D.embed.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ resampling


@pytest.mark.parametrize("direction", ["up", "down"])
def test_resampler_keeps_a_constant_image_constant(direction):
    """Exactly inside the image; the outermost row and column see the zero padding as in upfirdn2d."""
    x = torch.full((2, 3, 8, 8), 0.7)
    y = Resample(direction)(x)
    size = 16 if direction == "up" else 4
    assert y.shape == (2, 3, size, size)
    torch.testing.assert_close(y[..., 1:-1, 1:-1], torch.full_like(y[..., 1:-1, 1:-1], 0.7))
    edge = 3 / 4 if direction == "up" else 7 / 8  # one tap of 1/4 (up) or 1/8 (down) falls outside
    torch.testing.assert_close(y[0, 0, 0, size // 2], torch.tensor(0.7 * edge))
    torch.testing.assert_close(y[0, 0, 0, 0], torch.tensor(0.7 * edge**2))


def test_resampler_is_bilinear():
    """Inside the image: upsampling is bilinear interpolation, downsampling antialiased bilinear ([1,3,3,1]/8)."""
    x = torch.randn(2, 3, 8, 8)
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(Resample("up")(x)[..., 1:-1, 1:-1], up[..., 1:-1, 1:-1])
    down = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(Resample("down")(x)[..., 1:-1, 1:-1], down[..., 1:-1, 1:-1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert Resample("up")(x.bfloat16()).dtype == torch.bfloat16


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("options, match", [
    (dict(width=0), "model.width must be positive"),
    (dict(blocks=0), "model.blocks must be positive"),
    (dict(full_width_until=48), "full_width_until must be a power of two"),
    (dict(width=100), "cannot be split into 12 groups"),
    (dict(d_embed_dim=0), "model.d_embed_dim must be positive"),
])
def test_check_rejects_bad_values(options, match):
    with pytest.raises(ConfigError, match=match):
        model_config("r3gan", **options).check()


def test_defaults_and_fields():
    fields = config_fields("r3gan")
    assert fields == R3GANConfig().to_dict()
    assert fields["g_embed_dim"] is None and fields["d_embed_dim"] is None and fields["num_classes"] == 0
    model_config("r3gan", **SMALL_OPTIONS).check()
    model_config("r3gan").check()
