"""Unconditional DCGAN (num_classes=0) is bit-for-bit the DCGAN from before class conditioning.

The networks below are a frozen, self-contained copy of ganforge's DCGAN G and D as they were before
class-conditional models were added (their own norm, initialisation, minibatch-stddev and spectral-norm
helpers included, so a later change to ganforge.models.layers cannot move both sides at once). Built
from the same seed they must have the same parameter names, the same weights and give the same
outputs, with a tolerance of 0: saved runs keep loading and bit-exact tests stay valid.
"""
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.models.layers import count_parameters


# ---- frozen reference (do not edit) -------------------------------------------------------------
def _ref_norm(kind, channels):
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in range(min(32, channels), 0, -1) if channels % g == 0)
        return nn.GroupNorm(num_groups=groups, num_channels=channels)
    return nn.Identity()


def _ref_init(module):
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _ref_spectral_norm(module):
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            spectral_norm(m)


class _RefMinibatchStdDev(nn.Module):
    def forward(self, x):
        n, c, h, w = x.shape
        g = min(4, n)
        while n % g:
            g -= 1
        y = x.float().reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt()
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)
        y = y.view(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


def _ref_widths(base, stages):
    return [base * min(2**i, 8) for i in range(stages)]


class RefGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stages = cfg.resolution.bit_length() - 1 - 2
        widths = _ref_widths(cfg.g_width, stages)[::-1]
        layers = [nn.ConvTranspose2d(cfg.z_dim, widths[0], 4, 1, 0, bias=False), _ref_norm(cfg.g_norm, widths[0]),
                  nn.ReLU(inplace=True)]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), _ref_norm(cfg.g_norm, w_out),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _ref_init(self)
        if cfg.g_spectral_norm:
            _ref_spectral_norm(self)

    def forward(self, z):
        return self.net(z[:, :, None, None])


class RefDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stages = cfg.resolution.bit_length() - 1 - 2
        widths = _ref_widths(cfg.d_width, stages)
        dropout = [nn.Dropout(cfg.d_dropout)] if cfg.d_dropout > 0 else []
        layers = [nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True), *dropout]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=cfg.d_norm == "none"), _ref_norm(cfg.d_norm, w_out),
                       nn.LeakyReLU(0.2, inplace=True), *dropout]
        if cfg.d_mbstd:
            layers.append(_RefMinibatchStdDev())
        layers.append(nn.Conv2d(widths[-1] + int(cfg.d_mbstd), 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        _ref_init(self)
        if cfg.d_spectral_norm:
            _ref_spectral_norm(self)

    def forward(self, x):
        return self.net(x).flatten()
# ---- end of frozen reference --------------------------------------------------------------------


VARIANTS = {
    "default": {},
    "group": dict(g_norm="group", d_norm="group", d_mbstd=True),
    "none_sn_dropout": dict(g_norm="none", d_norm="none", d_spectral_norm=True, g_spectral_norm=True, d_dropout=0.2),
    "mixed_32px": dict(resolution=32, d_norm="none", d_mbstd=True, d_spectral_norm=True, d_dropout=0.3),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_unconditional_dcgan_is_the_pre_conditional_one(variant):
    cfg = model_config("dcgan", **{"resolution": 16, "channels": 3, "z_dim": 8, "g_width": 4, "d_width": 4,
                                   **VARIANTS[variant]})
    assert cfg.num_classes == 0  # the default
    nets = {}
    for name, build in [("new", lambda: (build_generator("dcgan", cfg), build_discriminator("dcgan", cfg))),
                        ("ref", lambda: (RefGenerator(cfg), RefDiscriminator(cfg)))]:
        torch.manual_seed(0)  # as the trainer: one seed, then G, then D
        nets[name] = build()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for name, (G, D) in nets.items():
        torch.manual_seed(2)  # dropout masks
        x = G(z)
        logits = D(x)
        G.eval(), D.eval()  # eval: running statistics and the stored spectral-norm vectors
        with torch.no_grad():
            x_eval = G(z)
            logits_eval = D(x_eval)
        outputs[name] = (x, logits, x_eval, logits_eval, G.state_dict(), D.state_dict())
    new, ref = outputs["new"], outputs["ref"]
    for a, b in zip(new[:4], ref[:4]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(new[4:], ref[4:]):  # same names, in the same order, with the same values
        assert list(a) == list(b)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    for new_net, ref_net in zip(nets["new"], nets["ref"]):
        assert count_parameters(new_net) == count_parameters(ref_net)


def test_unconditional_parameter_names_and_counts_are_unchanged():
    cfg = model_config("dcgan", resolution=16, channels=3, z_dim=8, g_width=4, d_width=4, d_mbstd=True)
    G, D = build_generator("dcgan", cfg), build_discriminator("dcgan", cfg)
    assert list(G.state_dict()) == [
        "net.0.weight", "net.1.weight", "net.1.bias", "net.1.running_mean", "net.1.running_var",
        "net.1.num_batches_tracked", "net.3.weight", "net.4.weight", "net.4.bias", "net.4.running_mean",
        "net.4.running_var", "net.4.num_batches_tracked", "net.6.weight",
    ]
    assert list(D.state_dict()) == [
        "net.0.weight", "net.2.weight", "net.3.weight", "net.3.bias", "net.3.running_mean", "net.3.running_var",
        "net.3.num_batches_tracked", "net.6.weight",
    ]
    assert (count_parameters(G), count_parameters(D)) == (1752, 864)
    default = model_config("dcgan")  # 32 px RGB, z 100, widths 64
    assert count_parameters(build_generator("dcgan", default)) == 1068928
    assert count_parameters(build_discriminator("dcgan", default)) == 663296
