"""Every registered architecture, unconditional and class-conditional, keeps the model contract:
G(z, c=None) -> samples, D(x, c=None) -> logits (N,), built by name from its own config."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ganforge.errors import ConfigError
from helpers import TINY_MODELS
from ganforge.models import (
    ARCHITECTURES,
    build_discriminator,
    build_generator,
    config_fields,
    list_models,
    model_config,
    model_spec,
    register_model,
)
from ganforge.models.layers import ConditionalNorm2d, count_parameters
from ganforge.training.checkpoint import module_state

K = 3  # classes of the conditional variants
N = 4  # batch

# A newly registered architecture adds its tiny settings to TINY_MODELS in tests/helpers.py.
TINY = TINY_MODELS
# Architectures whose conditional D is the unconditional one plus a projection term <embed(c), h>. The
# stylegan2-ada and R3GAN conditional Ds instead widen their last layer to an embedding dimension and
# project on the class embedding only (their references' parameter counts include that layer).
PROJECTION_PLUS_UNCONDITIONAL = {"dcgan", "mlp", "resnet"}
# Option sets each architecture is checked with, on top of TINY (the first is the default).
OPTIONS = {
    "dcgan": {
        "batch": {},
        "group_mbstd": dict(g_norm="group", d_norm="group", d_mbstd=True),
        "none_sn_dropout": dict(g_norm="none", d_norm="none", d_spectral_norm=True, g_spectral_norm=True,
                                d_dropout=0.2),
    },
    "mlp": {
        "plain": {},
        "mbstd_sn_dropout": dict(d_mbstd=True, d_spectral_norm=True, g_spectral_norm=True, d_dropout=0.2),
    },
}


def _cases(conditional=(0, K)) -> list:
    return list(_iter_cases(conditional))


def _iter_cases(conditional):
    for arch in list_models():
        for name in OPTIONS.get(arch, {"default": {}}):
            for k in conditional:
                yield pytest.param(arch, name, k, id=f"{arch}-{name}-{'cond' if k else 'uncond'}")


def _build(arch, option, num_classes, seed=0):
    cfg = model_config(arch, **TINY[arch], **OPTIONS.get(arch, {}).get(option, {}), num_classes=num_classes)
    torch.manual_seed(seed)
    return cfg, build_generator(arch, cfg), build_discriminator(arch, cfg)


def _inputs(cfg, num_classes, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(N, cfg.z_dim, generator=gen)
    c = torch.randint(num_classes, (N,), generator=gen) if num_classes else None
    return z, c


def _sample_shape(arch, cfg):
    return (cfg.channels, cfg.resolution, cfg.resolution) if model_spec(arch).data == "images" else (cfg.dim,)


def test_every_registered_architecture_has_test_settings():
    assert set(TINY) == set(list_models())


@pytest.mark.parametrize("arch, option, k", _cases())
def test_shapes_range_and_logits(arch, option, k):
    cfg, G, D = _build(arch, option, k)
    z, c = _inputs(cfg, k)
    assert G.z_dim == cfg.z_dim and G.num_classes == k and D.num_classes == k
    x = G(z, c)
    assert x.shape == (N, *_sample_shape(arch, cfg))
    if model_spec(arch).data == "images" and getattr(G, "bounded_output", True):
        assert x.abs().max() <= 1.0  # tanh output (linear-output generators declare bounded_output = False)
    assert torch.isfinite(x).all()
    logits = D(x, c)
    assert logits.shape == (N,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", list_models())
def test_labels_are_required_exactly_by_conditional_models(arch):
    cfg, G, D = _build(arch, None, 0)
    z, _ = _inputs(cfg, 0)
    x = G(z)
    labels = torch.zeros(N, dtype=torch.long)
    with pytest.raises(ValueError, match="unconditional"):
        G(z, labels)
    with pytest.raises(ValueError, match="unconditional"):
        D(x, labels)
    cfg, G, D = _build(arch, None, K)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)
    with pytest.raises(ValueError, match="class-conditional"):
        D(x)
    with pytest.raises(ValueError, match="integers"):
        D(x, labels.float())
    with pytest.raises(ValueError, match=r"class weights must have shape \(4, 3\)"):
        G(z, labels.float())  # G takes float class weights (N, K), not float labels
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        D(x, labels[:2])
    with pytest.raises(ConfigError, match="num_classes"):
        build_generator(arch, model_config(arch, num_classes=-1))


def _perturbed_generator(arch, option, k):
    """G with every weight moved a little: the per-class gains start at 1 and biases at 0."""
    cfg, G, _ = _build(arch, option, k)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p), alpha=0.1)
    return cfg, G


@pytest.mark.parametrize("arch, option, k", _cases(conditional=(K,)))
def test_generators_take_one_hot_class_weights_as_labels_and_blend_mixtures(arch, option, k):
    cfg, G = _perturbed_generator(arch, option, k)
    G.eval()
    z, c = _inputs(cfg, K)
    onehot = F.one_hot(c, K).float()  # (N, K)
    with torch.no_grad():
        assert torch.allclose(G(z, onehot), G(z, c), atol=1e-6)
        half = G(z, 0.5 * F.one_hot(torch.zeros_like(c), K).float() + 0.5 * F.one_hot(torch.ones_like(c), K).float())
        zeros, ones = G(z, torch.zeros_like(c)), G(z, torch.ones_like(c))
    assert not torch.allclose(half, zeros) and not torch.allclose(half, ones)  # a blend is neither class


@pytest.mark.parametrize("arch, option, k", _cases(conditional=(K,)))
def test_conditional_generator_output_depends_on_the_label(arch, option, k):
    cfg, G = _perturbed_generator(arch, option, k)
    z, _ = _inputs(cfg, k)
    G.eval()
    with torch.no_grad():
        x0, x1 = G(z, torch.zeros(N, dtype=torch.long)), G(z, torch.ones(N, dtype=torch.long))
        assert torch.equal(G(z, torch.zeros(N, dtype=torch.long)), x0)  # deterministic in eval mode
    assert (x0 - x1).flatten(1).abs().amax(1).min() > 0  # every sample changes


@pytest.mark.parametrize("arch, option, k", _cases(conditional=(K,)))
def test_projection_discriminator_uses_the_label(arch, option, k):
    cfg, G, D = _build(arch, option, k)
    z, c = _inputs(cfg, k)
    x = G(z, c).detach()
    D.eval()
    with torch.no_grad():
        by_class = torch.stack([D(x, torch.full((N,), j)) for j in range(k)])  # (K, N)
    assert (by_class[0] != by_class[1]).all() and (by_class[1] != by_class[2]).all()


@pytest.mark.parametrize("arch, option", [p.values[:2] for p in _cases(conditional=(0,))
                                          if p.values[0] in PROJECTION_PLUS_UNCONDITIONAL])
def test_conditional_discriminator_is_the_unconditional_one_plus_a_projection(arch, option):
    """Same layers, plus one embedding; with the embedding at 0 the logits are the unconditional D's."""
    cfg, _, D0 = _build(arch, option, 0)
    _, _, DK = _build(arch, option, K)
    state0, stateK = D0.state_dict(), DK.state_dict()
    extra = [key for key in stateK if key not in state0]
    assert [key for key in stateK if key in state0] == list(state0)
    assert extra and all(key.startswith("embed.") for key in extra)
    width = (DK.embed.parametrizations.weight.original if hasattr(DK.embed, "parametrizations") else DK.embed.weight)
    assert count_parameters(DK) - count_parameters(D0) == K * width.shape[1]
    D0.load_state_dict({key: stateK[key] for key in state0})
    with torch.no_grad():
        if hasattr(DK.embed, "parametrizations"):
            torch.nn.utils.parametrize.remove_parametrizations(DK.embed, "weight")
        DK.embed.weight.zero_()
    x = torch.randn(N, *_sample_shape(arch, cfg))
    D0.eval(), DK.eval()
    with torch.no_grad():
        torch.testing.assert_close(DK(x, torch.arange(N) % K), D0(x), rtol=0, atol=0)


@pytest.mark.parametrize("norm", ["group", "none"])
def test_conditional_discriminator_keeps_samples_independent_without_batchnorm(norm):
    cfg = model_config("dcgan", **TINY["dcgan"], d_norm=norm, num_classes=K)
    D = build_discriminator("dcgan", cfg)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    x, c = torch.randn(N, 2, 16, 16), torch.arange(N) % K
    torch.testing.assert_close(D(x, c)[:2], D(x[:2], c[:2]))


@pytest.mark.parametrize("g_norm, kind", [("batch", "BatchNorm2d"), ("group", "GroupNorm"), ("none", None)])
def test_conditional_generator_design(g_norm, kind):
    """Conditional normalisation (gain 1, bias 0 per class) where G normalises, else a label embedding on z."""
    cfg = model_config("dcgan", **TINY["dcgan"], g_norm=g_norm, num_classes=K)
    G = build_generator("dcgan", cfg)
    cond = [m for m in G.modules() if isinstance(m, ConditionalNorm2d)]
    if kind is None:
        assert not cond and G.embed.weight.shape == (K, cfg.z_dim)
        assert G.net[0].in_channels == 2 * cfg.z_dim
        return
    assert G.embed is None and len(cond) == 2  # 16 px: two hidden layers
    for m in cond:
        assert type(m.norm).__name__ == kind and m.norm.weight is None
        assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))
    # at initialisation every class is the plain normalisation: G ignores the label until trained
    z = torch.randn(N, cfg.z_dim)
    G.eval()
    with torch.no_grad():
        torch.testing.assert_close(G(z, torch.zeros(N, dtype=torch.long)), G(z, torch.full((N,), 2)))
    G0 = build_generator("dcgan", model_config("dcgan", **TINY["dcgan"], g_norm=g_norm))
    widths = sum(m.weight.shape[1] for m in cond)
    assert count_parameters(G) - count_parameters(G0) == 2 * K * widths - 2 * widths  # per-class minus shared


@pytest.mark.parametrize("arch, option, k", _cases())
def test_safetensors_round_trip_gives_identical_outputs(arch, option, k, tmp_path):
    cfg, G, D = _build(arch, option, k, seed=0)
    z, c = _inputs(cfg, k)
    D(G(z, c), c)  # a training-mode pass: BatchNorm statistics and spectral-norm vectors move off their start
    for name, net in [("G", G), ("D", D)]:
        save_file(module_state(net), str(tmp_path / f"{name}.safetensors"))
    _, G2, D2 = _build(arch, option, k, seed=123)  # different weights until loaded
    G2.load_state_dict(load_file(str(tmp_path / "G.safetensors")))
    D2.load_state_dict(load_file(str(tmp_path / "D.safetensors")))
    for net in (G, D, G2, D2):
        net.eval()
    with torch.no_grad():
        x, x2 = G(z, c), G2(z, c)
        torch.testing.assert_close(x2, x, rtol=0, atol=0)
        torch.testing.assert_close(D2(x, c), D(x, c), rtol=0, atol=0)


@pytest.mark.parametrize("arch, option, k", _cases())
def test_one_optimisation_step_reduces_a_simple_loss(arch, option, k):
    cfg, G, D = _build(arch, option, k)
    z, c = _inputs(cfg, k)
    target = torch.rand_like(G(z, c)) * 2 - 1
    # eval mode: no dropout, batch statistics or power iterations, so the loss is a fixed function of the weights
    G.eval(), D.eval()
    for net, loss_fn in [(G, lambda: F.mse_loss(G(z, c), target)),
                         (D, lambda: F.softplus(-D(target, c)).mean())]:  # G: fit a target; D: call it real
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        before = loss_fn()
        opt.zero_grad()
        before.backward()
        assert all(p.grad is not None for p in net.parameters())  # labels' parameters included
        opt.step()
        with torch.no_grad():
            assert loss_fn() < before


@pytest.mark.parametrize("arch", list_models())
def test_unknown_options_rejected_with_a_suggestion(arch):
    with pytest.raises(ConfigError, match=r"'z_dimm' \(did you mean 'z_dim'\?\)"):
        model_config(arch, z_dimm=3)
    with pytest.raises(ConfigError, match=r"'num_clases' \(did you mean 'num_classes'\?\)"):
        model_config(arch, num_clases=3)
    with pytest.raises(ConfigError, match=rf"unknown {arch} model option.*'zzz'; {arch} has: "):
        model_config(arch, zzz=1)
    with pytest.raises(ConfigError, match=r"unknown model 'dcgna' \(did you mean 'dcgan'\?\)"):
        model_config("dcgna")


def test_dcgan_options_are_not_mlp_options():
    with pytest.raises(ConfigError, match="resolution"):
        model_config("mlp", resolution=32)


@pytest.mark.parametrize("arch", list_models())
def test_config_fields_lets_a_caller_pass_only_the_keys_an_architecture_has(arch):
    fields = config_fields(arch)
    cfg_cls = model_spec(arch).config
    assert list(fields) == [f.name for f in dataclasses.fields(cfg_cls)]
    assert fields == dataclasses.asdict(cfg_cls())
    assert fields["num_classes"] == 0 and "z_dim" in fields
    options = dict(resolution=16, channels=1, z_dim=8, g_width=4, d_width=4, g_norm="batch", d_norm="none",
                   d_spectral_norm=False, g_spectral_norm=False, d_dropout=0.0, d_mbstd=False, num_classes=2)
    cfg = model_config(arch, **{key: value for key, value in options.items() if key in fields})
    assert cfg.num_classes == 2 and cfg.z_dim == 8
    G, D = build_generator(arch, cfg), build_discriminator(arch, cfg)
    labels = torch.tensor([0, 1])
    assert D(G(torch.randn(2, 8), labels), labels).shape == (2,)


def test_list_models():
    assert list_models() == sorted(ARCHITECTURES) and {"dcgan", "mlp"} <= set(list_models())
    assert list_models("dc*") == ["dcgan"]
    assert list_models("nothing*") == []
    assert list_models(data="images") == ["dcgan", "r3gan", "resnet", "stylegan2"]
    assert list_models(data="points") == ["mlp"]


def test_register_model(monkeypatch):
    monkeypatch.setattr("ganforge.models.registry.ARCHITECTURES", dict(ARCHITECTURES))
    from ganforge.models import registry

    G_cls, D_cls = model_spec("mlp").generator, model_spec("mlp").discriminator

    @register_model("tiny", generator=G_cls, discriminator=D_cls, data="points")
    @dataclasses.dataclass
    class TinyConfig:
        z_dim: int = 2
        num_classes: int = 0

    assert "tiny" in registry.list_models() and "tiny" not in ARCHITECTURES
    assert registry.model_spec("tiny").config is TinyConfig
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", generator=G_cls, discriminator=D_cls)(dataclasses.dataclass(type("Other", (), {
            "__annotations__": {"z_dim": int, "num_classes": int}, "z_dim": 2, "num_classes": 0})))
    with pytest.raises(TypeError, match="num_classes"):
        register_model("bad", generator=G_cls, discriminator=D_cls)(
            dataclasses.dataclass(type("Bad", (), {"__annotations__": {"z_dim": int}, "z_dim": 2})))
    with pytest.raises(ConfigError, match="need a DCGANConfig"):
        build_generator("dcgan", model_config("mlp"))


# Every resolution and channel count, for every image architecture: the corners of the range (16 and 256 px,
# 1 and 4 channels) in every combination, and each size and channel count between them at least once.
SIZES = [(16, 1), (16, 4), (256, 1), (256, 4), (32, 2), (64, 3), (128, 2)]


@pytest.mark.parametrize("arch", list_models(data="images"))
@pytest.mark.parametrize("resolution, channels", SIZES)
def test_every_image_architecture_at_every_resolution_and_channel_count(arch, resolution, channels):
    options = {**TINY[arch], "resolution": resolution, "channels": channels}
    if arch == "stylegan2":  # widths are channel_base / resolution (capped): keep 8 channels at every size
        options["channel_base"] = 8 * resolution
    cfg = model_config(arch, **options)
    torch.manual_seed(0)
    G, D = build_generator(arch, cfg), build_discriminator(arch, cfg)
    with torch.no_grad():
        x = G(torch.randn(2, cfg.z_dim))
        logits = D(x)
    assert x.shape == (2, channels, resolution, resolution) and torch.isfinite(x).all()
    if getattr(G, "bounded_output", True):
        assert x.abs().max() <= 1.0
    assert logits.shape == (2,) and torch.isfinite(logits).all()
