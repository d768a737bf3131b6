import torch

from ganforge.training.augment import (
    AdaptiveAugment, DiffAugment, brightness, colour, contrast, cutout, saturation, translation,
)


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


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img (C, H, W) moved down by dy and right by dx; what moves in from outside is zero."""
    _, h, w = img.shape
    out = torch.zeros_like(img)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        img[:, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


def test_translation_moves_pixels_and_fills_zeros():
    # Every pixel value distinct and non-zero, so exactly one offset can explain each output.
    # Non-square (16 x 32) so that swapping height and width would show: offsets up to 2 rows, 4 columns.
    n, c, h, w = 64, 2, 16, 32
    x = torch.arange(1, n * c * h * w + 1, dtype=torch.float32).view(n, c, h, w)
    out = translation(x, gen(3))
    max_dy, max_dx = 2, 4  # 1/8 of the size
    offsets = []
    for img, src in zip(out, x):
        found = [(dy, dx) for dy in range(-max_dy, max_dy + 1) for dx in range(-max_dx, max_dx + 1)
                 if torch.equal(img, shifted(src, dy, dx))]
        assert len(found) == 1, "not a zero-filled shift within 1/8 of the image size"
        dy, dx = found[0]
        offsets.append((dy, dx))
        # the border strip that moved in from outside the image is zero in every channel, the rest is not
        moved_in = torch.ones(h, w, dtype=torch.bool)
        moved_in[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = False
        assert (img[:, moved_in] == 0).all() and (img[:, ~moved_in] != 0).all()
    dys, dxs = {dy for dy, _ in offsets}, {dx for _, dx in offsets}
    # each image draws its own offset, and over 64 images every allowed row and column shift occurs
    assert dys == set(range(-max_dy, max_dy + 1)) and dxs == set(range(-max_dx, max_dx + 1))
    assert sum(o != (0, 0) for o in offsets) > n // 2


def test_cutout_zeroes_one_square_of_half_the_size():
    n, c, h, w = 64, 3, 16, 16
    x = torch.rand(n, c, h, w, generator=gen(0)) + 0.5  # no zero pixel to begin with
    out = cutout(x, gen(4))
    sizes, corners = [], set()
    for img, src in zip(out, x):
        hole = img == 0  # (C, H, W)
        assert (hole == hole[:1]).all()  # the same pixels in every channel
        hole = hole[0]
        assert torch.equal(img[:, ~hole], src[:, ~hole])  # everything else untouched
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert len(rows) > 0  # the square's centre lies in the image: never an empty hole
        # one solid rectangle: contiguous rows and columns, and every pixel of their product
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
        assert hole.sum() == len(rows) * len(cols)
        assert len(rows) <= h // 2 and len(cols) <= w // 2
        sizes.append((len(rows), len(cols)))
        corners.add((int(rows[0]), int(cols[0])))
    assert (h // 2, w // 2) in sizes  # a square away from the border is half the image size
    assert len(corners) > n // 4  # placed at random, per image


def _per_image_factor(delta_out, delta_in):
    """The scale a with delta_out = a * delta_in for each image, checked to be one number per image."""
    a = (delta_out * delta_in).sum((1, 2, 3)) / (delta_in**2).sum((1, 2, 3))
    torch.testing.assert_close(delta_out, a.view(-1, 1, 1, 1) * delta_in, atol=1e-5, rtol=0)
    return a


def test_colour_changes_brightness_saturation_and_contrast():
    n = 256
    x = torch.rand(n, 3, 8, 8, generator=gen(0)) * 2 - 1

    b = brightness(x, gen(5)) - x  # a constant added to each image, uniform in [-0.5, 0.5]
    assert torch.allclose(b, b[:, :1, :1, :1].expand_as(b), atol=1e-6)
    b = b[:, 0, 0, 0]
    assert b.min() >= -0.5 and b.max() <= 0.5 and b.min() < -0.4 and b.max() > 0.4

    gray = x.mean(1, keepdim=True)  # saturation keeps each pixel's mean over channels and scales the rest
    out = saturation(x, gen(6))
    torch.testing.assert_close(out.mean(1, keepdim=True), gray, atol=1e-5, rtol=0)
    s = _per_image_factor(out - gray, x - gray)
    assert s.min() >= 0 and s.max() <= 2 and s.min() < 0.2 and s.max() > 1.8

    mean = x.mean((1, 2, 3), keepdim=True)  # contrast keeps each image's mean and scales the rest
    out = contrast(x, gen(7))
    torch.testing.assert_close(out.mean((1, 2, 3), keepdim=True), mean, atol=1e-5, rtol=0)
    k = _per_image_factor(out - mean, x - mean)
    assert k.min() >= 0.5 and k.max() <= 1.5 and k.min() < 0.6 and k.max() > 1.4

    # colour is the three in turn, with one generator; it changes every image
    g = gen(8)
    torch.testing.assert_close(colour(x, gen(8)), contrast(saturation(brightness(x, g), g), g))
    assert ((colour(x, gen(8)) - x).abs().amax((1, 2, 3)) > 1e-3).all()


def test_policy_runs_the_named_augmentation_on_a_random_share_of_samples():
    x = torch.rand(200, 3, 16, 16, generator=gen(0)) * 2 - 1
    for name, fn in (("translation", translation), ("cutout", cutout), ("colour", colour)):
        assert torch.equal(DiffAugment(name, p=1.0)(x, gen(9)), fn(x, gen(9)))  # draws first, then decides
    out = DiffAugment("colour", p=0.3)(x, gen(10))
    changed = (out != x).flatten(1).any(1)
    kept = ~changed
    assert torch.equal(out[kept], x[kept])
    assert 0.2 < changed.float().mean() < 0.4  # about p of the samples, decided per sample


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
