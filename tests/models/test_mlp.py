"""The 2-D MLP G and D used by the mixture benchmark (registered as "mlp")."""
import torch

from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.models.mlp import MLPConfig, MLPDiscriminator, MLPGenerator


def test_shapes():
    G = build_generator("mlp", model_config("mlp", z_dim=2))
    x = G(torch.randn(16, 2))
    assert x.shape == (16, 2)
    for options in ({}, dict(d_dropout=0.2), dict(d_mbstd=True)):
        D = build_discriminator("mlp", model_config("mlp", **options))
        assert D(x).shape == (16,)


def test_defaults_are_the_benchmark_networks():
    G, D = MLPGenerator(), MLPDiscriminator()  # MLPConfig() by default
    linear = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(2, 128), (128, 128), (128, 128), (128, 2)]
    linear = [m for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(2, 128), (128, 128), (128, 128), (128, 1)]
    assert MLPConfig().z_dim == G.z_dim == 2


def test_minibatch_std_feature_sees_the_batch():
    torch.manual_seed(0)
    D = MLPDiscriminator(MLPConfig(d_mbstd=True, d_mbstd_group=4)).eval()
    same = torch.zeros(8, 2) + 0.5
    varied = same.clone()
    varied[4:] += torch.randn(4, 2)
    # the first sample is unchanged, but its group now holds varied samples: its logit moves
    assert not torch.allclose(D(same)[0], D(varied)[0])
    D_plain = MLPDiscriminator().eval()
    assert torch.allclose(D_plain(same)[0], D_plain(varied)[0])
