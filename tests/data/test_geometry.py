import pytest
import torch

from ganforge.data import Geometry
from ganforge.data.geometry import edge_pad, fit_images, inner_size, is_valid_resolution, resize_images


def random_images(n, c, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def test_dict_round_trip():
    g = Geometry(resolution=32, height=28, width=20, fit="pad", channels=1)
    d = g.to_dict()
    assert d == {"resolution": 32, "height": 28, "width": 20, "fit": "pad", "channels": 1}
    assert Geometry.from_dict(d) == g
    mixed = Geometry(64, None, None, "crop", 3)
    assert Geometry.from_dict(mixed.to_dict()) == mixed


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError):
        Geometry(32, 28, 28, "stretch", 3)
    with pytest.raises(ValueError):
        Geometry(32, 28, 28, "pad", 5)


@pytest.mark.parametrize("r,ok", [(16, True), (32, True), (256, True), (8, False), (48, False), (512, False)])
def test_valid_resolutions(r, ok):
    assert is_valid_resolution(r) is ok


def test_pad_is_exactly_inverted():
    x = random_images(5, 3, 28, 22)  # (N, C, h, w)
    padded = fit_images(x, 32, "pad")
    assert padded.shape == (5, 3, 32, 32) and padded.dtype == torch.uint8
    geometry = Geometry(32, 28, 22, "pad", 3)
    assert torch.equal(geometry.restore(padded), x)


def test_edge_pad_repeats_border_pixels():
    x = torch.arange(4, dtype=torch.uint8).reshape(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    y = edge_pad(x, 4)[0, 0]
    assert y.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def smooth_images(n, c, h, w):
    """Ramps that survive shrinking and enlarging almost unchanged (random pixels would not)."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ramp = rows * 200 / h + cols * 50 / w  # 0 .. 250
    return torch.stack([torch.stack([(ramp * (k + 1) / (k + c)) for k in range(c)])] * n).round().to(torch.uint8)


def test_letterbox_pad_of_large_images_restores_shape():
    x = smooth_images(2, 3, 100, 50)
    assert inner_size(100, 50, 32, "pad") == (32, 16)
    y = fit_images(x, 32, "pad")
    assert y.shape == (2, 3, 32, 32)
    # the image shrunk to 32 x 16 in the middle columns, its edge columns repeated on either side
    assert torch.equal(y[..., 8:24], resize_images(x, (32, 16)))
    assert torch.equal(y[..., :8], y[..., 8:9].expand(-1, -1, -1, 8))
    assert torch.equal(y[..., 24:], y[..., 23:24].expand(-1, -1, -1, 8))
    back = Geometry(32, 100, 50, "pad", 3).restore(y)
    assert back.shape == (2, 3, 100, 50)
    assert torch.equal(back, resize_images(y[..., 8:24], (100, 50)))  # the middle, enlarged back
    assert (back.float() - x.float()).abs().mean() < 2  # close to the original


def test_crop_takes_the_centre():
    # left half 0, right half 255, 20 x 40: scaled to 32 x 64 then the centre 32 columns kept
    x = torch.zeros(1, 1, 20, 40, dtype=torch.uint8)
    x[..., 20:] = 255
    y = fit_images(x, 32, "crop")
    assert y.shape == (1, 1, 32, 32)
    assert y[0, 0, 16, 0] == 0 and y[0, 0, 16, 31] == 255
    # crop cannot be undone: the square comes back unchanged
    assert torch.equal(Geometry(32, 20, 40, "crop", 1).restore(y), y)


def test_resize_round_trip_shape_and_values():
    x = torch.full((3, 3, 20, 40), 77, dtype=torch.uint8)
    y = fit_images(x, 32, "resize")
    assert y.shape == (3, 3, 32, 32)
    back = Geometry(32, 20, 40, "resize", 3).restore(y)
    assert back.shape == (3, 3, 20, 40) and back.dtype == torch.uint8
    assert torch.all(back == 77)  # a flat image stays flat through both resizes
    # a ramp is stretched to the square and back: whole image, no crop or padding, close to the original
    x = smooth_images(2, 3, 20, 40)
    y = fit_images(x, 32, "resize")
    assert torch.equal(y, resize_images(x, (32, 32)))
    back = Geometry(32, 20, 40, "resize", 3).restore(y)
    assert torch.equal(back, resize_images(y, (20, 40)))
    assert (back.float() - x.float()).abs().mean() < 2


def test_mixed_sizes_restore_unchanged():
    y = random_images(2, 1, 32, 32)
    assert torch.equal(Geometry(32, None, None, "pad", 1).restore(y), y)


def test_restore_checks_shape():
    with pytest.raises(ValueError):
        Geometry(32, 28, 28, "pad", 1).restore(random_images(1, 1, 64, 64))


def test_resize_uses_premultiplied_alpha():
    # an invisible red half must not tint the visible blue half
    x = torch.zeros(1, 4, 8, 8, dtype=torch.uint8)
    x[0, 0, :, :4] = 255  # red, alpha 0
    x[0, 2, :, 4:] = 255  # blue ...
    x[0, 3, :, 4:] = 255  # ... opaque
    y = resize_images(x, (4, 4))
    visible = y[0, :, :, 2:]  # the opaque half
    assert visible[0].max() == 0 and visible[2].min() == 255
