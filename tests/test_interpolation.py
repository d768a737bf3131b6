"""Latent walks: spherical interpolation, the walk's frames and classes, and what `write_walk` writes."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.interpolation import plan_walk, slerp, write_walk
from ganforge.models import build_generator, model_config
from ganforge.sampling import TrainedGenerator
from ganforge.data.geometry import Geometry
from ganforge.pixels import to_uint8


def test_slerp_ends_at_its_points_and_keeps_the_norm_between_orthogonal_points():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0))  # a straight line would dip to 2.12
    same = slerp(a, a * 2, torch.tensor([0.5]))  # parallel: the straight line
    assert torch.allclose(same, torch.tensor([[4.5, 0.0]]))


def test_a_walk_visits_its_keyframes_and_loops_back():
    walk = plan_walk(z_dim=6, keys=3, frames=4, seed=5)
    points = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    assert walk.z.shape == (12, 6) and walk.class_weights is None
    for k in range(3):
        assert torch.allclose(walk.z[4 * k], points[k])
    # the last frame is one step before the first keyframe again, as close to it as frame 1 is to frame 0
    assert (walk.z[-1] - points[0]).norm() < (points[2] - points[0]).norm()


def test_a_conditional_walk_blends_one_hot_classes_between_keyframes():
    walk = plan_walk(z_dim=4, keys=3, frames=4, seed=0, num_classes=5)
    assert walk.keyframe_classes == [0, 1, 2]
    assert torch.equal(walk.class_weights[0], torch.eye(5)[0]) and torch.equal(walk.class_weights[4], torch.eye(5)[1])
    assert torch.allclose(walk.class_weights[2], 0.5 * torch.eye(5)[0] + 0.5 * torch.eye(5)[1])
    assert torch.allclose(walk.class_weights.sum(1), torch.ones(12))
    within = plan_walk(z_dim=4, keys=3, frames=4, seed=0, num_classes=5, cls=3)
    assert (within.class_weights.argmax(1) == 3).all() and torch.allclose(within.class_weights.max(1).values, torch.ones(12))


def test_too_short_a_walk_is_refused():
    with pytest.raises(GanforgeError, match="at least 2 keyframes"):
        plan_walk(4, keys=1, frames=4)


def _generator(num_classes=0, channels=1):
    torch.manual_seed(0)
    cfg = model_config("dcgan", resolution=16, channels=channels, z_dim=8, g_width=4, num_classes=num_classes)
    G = build_generator("dcgan", cfg).eval()
    return TrainedGenerator(G=G, arch="dcgan", geometry=Geometry(16, 16, 16, "pad", channels), class_names=[],
                            step=3, z_dim=8, num_classes=num_classes)


def test_write_walk_as_animation_grid_npz_and_folder(tmp_path):
    gen = _generator(num_classes=3)
    path, n = write_walk(gen, 3, tmp_path / "walk.gif", frames=4, fps=10)
    with Image.open(path) as gif:
        assert n == 12 and gif.n_frames == 12 and gif.info["duration"] == 100 and gif.info["loop"] == 0
    path, _ = write_walk(gen, 3, tmp_path / "walk.npz", frames=4)
    saved = np.load(path)
    assert saved["images"].shape == (12, 16, 16) and saved["z"].shape == (12, 8) and saved["class_weights"].shape == (12, 3)
    # the frames are G's images for the saved inputs
    again = gen.generate(torch.from_numpy(saved["z"]), labels=torch.from_numpy(saved["class_weights"]))
    assert np.array_equal(gen.geometry.restore(to_uint8(again))[:, 0].numpy(), saved["images"])
    path, _ = write_walk(gen, 2, tmp_path / "walk.png", frames=5)
    assert Image.open(path).size == (5 * 18 + 2, 2 * 18 + 2)  # one row per segment
    path, _ = write_walk(gen, 2, tmp_path / "frames", frames=2)
    assert len(list(path.glob("*.png"))) == 4


def test_a_class_walk_needs_a_conditional_generator(tmp_path):
    with pytest.raises(GanforgeError, match="not class-conditional"):
        write_walk(_generator(), 2, tmp_path / "w.gif", frames=2, cls=1)
