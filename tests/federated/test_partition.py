"""Splitting a labelled set over sites: disjoint, complete, and as skewed as asked."""
import numpy as np
import pytest

from ganforge.errors import ConfigError, DataError
from ganforge.federated.partition import parse_split, split_indices, write_partitions

LABELS = np.repeat(np.arange(10), 50)  # 500 images, 10 classes


def covers_all_once(parts, n):
    joined = np.concatenate(parts)
    return len(joined) == n and len(np.unique(joined)) == n


@pytest.mark.parametrize("split", ["iid", "classes", "dirichlet:0.5", "dirichlet:100"])
def test_splits_are_disjoint_and_complete(split):
    parts = split_indices(LABELS, len(LABELS), 4, split, seed=1, min_images=10)
    assert len(parts) == 4 and covers_all_once(parts, len(LABELS))
    assert min(len(p) for p in parts) >= 10


def test_iid_sites_are_equal_and_classes_sites_share_no_class():
    iid = split_indices(LABELS, 500, 4, "iid")
    assert sorted(len(p) for p in iid) == [125, 125, 125, 125]
    by_class = split_indices(LABELS, 500, 4, "classes")
    held = [set(LABELS[p].tolist()) for p in by_class]
    assert [len(h) for h in held] == [3, 3, 2, 2]
    assert all(not (held[a] & held[b]) for a in range(4) for b in range(a + 1, 4))


def test_small_alpha_skews_labels_more_than_large_alpha():
    def skew(alpha):  # mean over sites of the largest class share
        parts = split_indices(LABELS, 500, 4, f"dirichlet:{alpha}", seed=3)
        return np.mean([np.bincount(LABELS[p], minlength=10).max() / len(p) for p in parts])

    assert skew(0.1) > 0.4 > 0.2 > skew(1000)


def test_same_seed_same_split():
    a = split_indices(LABELS, 500, 3, "dirichlet:0.5", seed=7)
    b = split_indices(LABELS, 500, 3, "dirichlet:0.5", seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("text", ["dirichlet", "dirichlet:-1", "dirichlet:x", "shards", "iid:2"])
def test_bad_split_names_are_refused(text):
    with pytest.raises(ConfigError, match="--split"):
        parse_split(text)


def test_impossible_splits_say_why():
    with pytest.raises(DataError, match="labelled"):
        split_indices(None, 100, 2, "classes")
    with pytest.raises(DataError, match="one class per site"):
        split_indices(LABELS, 500, 11, "classes")
    with pytest.raises(DataError, match="cannot give"):
        split_indices(LABELS, 500, 4, "iid", min_images=200)


def test_partitions_keep_the_stored_images_and_all_class_names(tiny_npz, tmp_path):
    files = write_partitions(str(tiny_npz), tmp_path / "sites", 2, "classes")
    with np.load(tiny_npz) as whole:
        images = whole["images"]
    for k, f in enumerate(files):
        with np.load(f) as d:
            assert d["images"].shape[1:3] == images.shape[1:]  # as stored (14x14), not fitted to 16
            assert set(d["labels"].tolist()) == {k}
            assert list(d["class_names"]) == ["0", "1"]
