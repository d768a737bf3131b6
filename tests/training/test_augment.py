import torch

from ganforge.training.augment import AdaptiveAugment, DiffAugment, translation


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shapes_identity_reproducibility_and_gradients():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    aug = DiffAugment("translation,cutout,colour", p=1.0)
    assert aug(x, gen()).shape == x.shape
    assert torch.equal(DiffAugment(p=0.0)(x, gen()), x)
    assert torch.equal(aug(x, gen(1)), aug(x, gen(1))) and not torch.equal(aug(x, gen(1)), aug(x, gen(2)))
    xg = x.clone().requires_grad_(True)
    aug(xg, gen()).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_translation_moves_pixels_and_fills_zeros():
    x = torch.arange(1, 65, dtype=torch.float32).view(1, 1, 8, 8).repeat(4, 1, 1, 1)
    out = translation(x, gen(3))
    for img, src in zip(out, x):
        values = set(img.unique().tolist()) - {0.0}
        assert values <= set(src.unique().tolist())  # no new values: a shift plus zeros


def test_adaptive_probability_follows_overfitting_signal():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0)
    for _ in range(5):
        ada.update(torch.full((100,), 3.0))  # D sure of every real image: r_t = 1
        ada.adjust(100)
    assert float(ada.p) == 0.5
    state = ada.state_dict()
    for _ in range(10):
        ada.update(torch.tensor([1.0, -1.0]))  # r_t = 0 < target
        ada.adjust(100)
    assert float(ada.p) == 0.0
    restored = AdaptiveAugment()
    restored.load_state_dict(state)
    assert float(restored.p) == 0.5
