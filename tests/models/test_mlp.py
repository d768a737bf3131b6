"""The 2-D MLP G and D used by the mixture benchmark."""
import torch

from ganforge.models.mlp import MLPDiscriminator, MLPGenerator


def test_shapes():
    G = MLPGenerator(z_dim=2)
    x = G(torch.randn(16, 2))
    assert x.shape == (16, 2)
    for D in (MLPDiscriminator(), MLPDiscriminator(dropout=0.2), MLPDiscriminator(mbstd=True)):
        assert D(x).shape == (16,)


def test_minibatch_std_feature_sees_the_batch():
    torch.manual_seed(0)
    D = MLPDiscriminator(mbstd=True, mbstd_group=4).eval()
    same = torch.zeros(8, 2) + 0.5
    varied = same.clone()
    varied[4:] += torch.randn(4, 2)
    # the first sample is unchanged, but its group now holds varied samples: its logit moves
    assert not torch.allclose(D(same)[0], D(varied)[0])
    D_plain = MLPDiscriminator().eval()
    assert torch.allclose(D_plain(same)[0], D_plain(varied)[0])
