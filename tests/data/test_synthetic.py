import numpy as np

from ganforge.data.synthetic import SHAPE_CLASSES, make_shapes


def test_shapes_are_deterministic():
    a, la = make_shapes(200)
    b, lb = make_shapes(200)
    assert np.array_equal(a, b) and np.array_equal(la, lb)


def test_shapes_layout_and_labels():
    images, labels = make_shapes(500)
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (500,) and labels.dtype == np.int64
    assert set(labels.tolist()) == set(range(len(SHAPE_CLASSES)))
    # images differ from each other and use the whole range of brightness
    assert len({im.tobytes() for im in images}) == 500
    assert images.max() >= 200 and images.min() <= 40


def test_prefix_is_stable_and_size_changes_only_the_rendering():
    small, labels = make_shapes(10)
    more, more_labels = make_shapes(50)
    assert np.array_equal(small, more[:10]) and np.array_equal(labels, more_labels[:10])
    big, big_labels = make_shapes(10, size=64)
    assert big.shape == (10, 64, 64, 3) and np.array_equal(big_labels, labels)
    # the same scene: 2x2-averaged 64 px image is close to the 32 px one
    pooled = big.reshape(10, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(pooled - small).mean() < 6


def test_shape_is_brighter_than_background():
    images, labels = make_shapes(100)
    centre = images[:, 14:18, 14:18].astype(float).mean(axis=(1, 2, 3))
    corner = images[:, :3, :3].astype(float).mean(axis=(1, 2, 3))
    filled = labels != SHAPE_CLASSES.index("ring")  # a ring's centre is background
    assert (centre[filled] > corner[filled]).mean() > 0.8
