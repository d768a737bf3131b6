"""The FID Inception-v3: shapes, state-dict layout, weight loading offline, parity with pytorch-fid.

pytorch-fid needs torchvision, which does not import beside these machines' CPU build of torch: the
parity test compares with its outputs recorded by tests/metrics/references/record.py on the same inputs.
"""
from __future__ import annotations

import hashlib
import io
import json
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from ganforge.devices import exact_float32
from ganforge.errors import GanforgeError
from ganforge.metrics import inception
from ganforge.metrics.inception import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    FIDInceptionV3,
    inception_available,
    load_inception,
)
from helpers import REPO, randomize_

# Parameters of the 1008-class network without auxiliary head: torchvision's Inception-v3 has
# 27,161,264 with its auxiliary head (3,326,696) and 1000 classes; 8 more classes add 8 x 2049.
# Checked against pytorch-fid's fid_inception_v3() (23,850,960) in the reference environment.
PARAM_COUNT = 23_850_960
STATE_DICT_ENTRIES = 566  # 94 conv weights, 94 x 5 BatchNorm entries, fc weight and bias

# Branch names of each block type, in the file's naming.
_BRANCHES = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
}
_BLOCKS = {
    "Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C", "Mixed_6c": "C",
    "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E",
}
_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]


def expected_keys() -> set[str]:
    """The key set of the published weights file (plus BatchNorm batch counters)."""
    convs = list(_STEM) + [f"{block}.{branch}" for block, kind in _BLOCKS.items() for branch in _BRANCHES[kind]]
    keys = {"fc.weight", "fc.bias"}
    for c in convs:
        keys.add(f"{c}.conv.weight")
        keys.update(f"{c}.bn.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))
    return keys


def random_images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    return randomize_(FIDInceptionV3(), seed=0)


# ---------------------------------------------------------------------------
# architecture


@torch.no_grad()
def test_output_shapes_and_gray_equals_repeated_rgb(model):
    for shape in [(2, 1, 28, 28), (2, 3, 32, 32), (2, 3, 64, 48)]:
        features, logits = model(random_images(shape, seed=1))
        assert features.shape == (2, 2048) and logits.shape == (2, 1008)
        assert features.dtype == logits.dtype == torch.float32
        assert torch.isfinite(features).all() and torch.isfinite(logits).all()
        assert 1e-2 < features.abs().max() < 1e3  # the seeded weights keep a usable scale
    gray = random_images((2, 1, 28, 28), seed=2)
    f_gray, l_gray = model(gray)
    f_rgb, l_rgb = model(gray.repeat(1, 3, 1, 1))
    assert torch.equal(f_gray, f_rgb) and torch.equal(l_gray, l_rgb)


@torch.no_grad()
def test_float32_under_autocast(model):
    images = random_images((1, 3, 16, 16), seed=5)
    features, logits = model(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f_auto, l_auto = model(images)
    assert f_auto.dtype == l_auto.dtype == torch.float32
    assert torch.equal(f_auto, features) and torch.equal(l_auto, logits)


def test_tf32_is_switched_off_only_inside():
    flags = (torch.backends.cudnn, torch.backends.cuda.matmul)
    saved = [f.allow_tf32 for f in flags]
    try:
        # both on before (matmul TF32 is off by default, which would hide a context that forgot it)
        for f in flags:
            f.allow_tf32 = True
        with exact_float32(torch.device("cuda")):
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with pytest.raises(RuntimeError, match="inside"):  # restored when the block fails too
            with exact_float32(torch.device("cuda")):
                raise RuntimeError("inside")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        # and a setting of off is kept off
        torch.backends.cudnn.allow_tf32 = False
        with exact_float32(torch.device("cuda")):
            pass
        assert not torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        for f, value in zip(flags, saved):
            f.allow_tf32 = value


def test_rejects_other_dtypes_and_channel_counts(model):
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_state_dict_matches_the_weights_file_layout():
    net = FIDInceptionV3()
    state = net.state_dict()
    assert set(state) == expected_keys()
    assert len(state) == STATE_DICT_ENTRIES
    assert sum(p.numel() for p in net.parameters()) == PARAM_COUNT
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert state["Mixed_7c.branch_pool.bn.running_var"].shape == (192,)
    assert state["fc.weight"].shape == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in state)
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))
    assert (net.Mixed_7b.pool, net.Mixed_7c.pool) == ("avg", "max")


def test_always_in_inference_mode():
    net = FIDInceptionV3().train()
    assert not any(m.training for m in net.modules())


# ---------------------------------------------------------------------------
# weights: cache, download, verification


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _serve(monkeypatch, data: bytes | None):
    """Make every download return ``data``, or fail as offline when ``data`` is None."""

    def fake_urlopen(request, timeout=None):
        if data is None:
            raise urllib.error.URLError("network unreachable")
        return _FakeResponse(data)

    import ganforge.cache

    monkeypatch.setattr(ganforge.cache.urllib.request, "urlopen", fake_urlopen)


def _cached(tmp_path):
    return tmp_path / "weights" / INCEPTION_WEIGHTS_FILE


def test_offline_error_names_the_url_and_the_path(tmp_path, monkeypatch):
    _serve(monkeypatch, None)
    assert not inception_available(tmp_path)
    with pytest.raises(GanforgeError) as info:
        load_inception(cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert INCEPTION_WEIGHTS_URL in message and str(_cached(tmp_path)) in message
    assert "network unreachable" in message and "\n" not in message
    assert list((tmp_path / "weights").iterdir()) == []  # no partial file left behind


def test_no_download_when_disabled(tmp_path, monkeypatch):
    _serve(monkeypatch, b"should not be fetched")
    with pytest.raises(GanforgeError, match="place it at") as info:
        load_inception(cache_dir=tmp_path, download=False)
    assert str(_cached(tmp_path)) in str(info.value)
    assert not _cached(tmp_path).parent.exists()


def test_download_with_wrong_hash_is_rejected(tmp_path, monkeypatch):
    _serve(monkeypatch, b"not the weights")
    with pytest.raises(GanforgeError, match="sha256") as info:
        load_inception(cache_dir=tmp_path, progress=False)
    assert str(_cached(tmp_path)) in str(info.value)
    assert list((tmp_path / "weights").iterdir()) == []


def test_damaged_cached_file_is_rejected(tmp_path, monkeypatch):
    _serve(monkeypatch, None)
    path = _cached(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    assert inception_available(tmp_path)
    with pytest.raises(GanforgeError, match="sha256") as info:
        load_inception(cache_dir=tmp_path)
    assert str(path) in str(info.value) and INCEPTION_WEIGHTS_URL in str(info.value)


def test_unreadable_or_wrong_file_without_verification(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(GanforgeError, match="not a readable weights file"):
        load_inception(junk, verify=False)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, wrong)
    with pytest.raises(GanforgeError, match="does not hold the FID Inception"):
        load_inception(wrong, verify=False)
    with pytest.raises(GanforgeError, match="not found"):
        load_inception(tmp_path / "missing.pth")


def test_download_verify_and_load(tmp_path, monkeypatch):
    """A served file (old-style: no BatchNorm batch counters) is verified, cached and loaded."""
    source = randomize_(FIDInceptionV3(), seed=3).state_dict()
    old_style = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    buffer = io.BytesIO()
    torch.save(old_style, buffer)
    data = buffer.getvalue()
    monkeypatch.setattr(inception, "INCEPTION_WEIGHTS_SHA256", hashlib.sha256(data).hexdigest())
    _serve(monkeypatch, data)

    net = load_inception(cache_dir=tmp_path, progress=False)
    assert _cached(tmp_path).read_bytes() == data and inception_available(tmp_path)
    assert [p.name for p in _cached(tmp_path).parent.iterdir()] == [INCEPTION_WEIGHTS_FILE]
    assert all(torch.equal(net.state_dict()[k], v) for k, v in old_style.items())
    assert not net.training and not any(p.requires_grad for p in net.parameters())

    _serve(monkeypatch, None)  # now offline: the cached, verified copy is used
    again = load_inception(cache_dir=tmp_path)
    assert torch.equal(again.fc.weight, net.fc.weight)
    assert torch.equal(load_inception(_cached(tmp_path)).fc.bias, net.fc.bias)


# ---------------------------------------------------------------------------
# parity with the reference implementation


PARITY_SEED = 4  # the seeded weights both networks get
PARITY_SHAPES = [(2, 1, 28, 28), (2, 3, 32, 32), (2, 3, 64, 48)]


def parity_images() -> list[torch.Tensor]:
    """The uint8 images both networks see (tests/metrics/references/record.py imports this)."""
    return [random_images(shape, seed=10 + i) for i, shape in enumerate(PARITY_SHAPES)]


@torch.no_grad()
def test_parity_with_pytorch_fid():
    """pytorch-fid's FID Inception-v3 (fid_inception_v3 with its pool features), given our seeded weights, as
    recorded by tests/metrics/references/record.py: the same state-dict layout, and the same pool features and
    logits to 1e-5 of their scale, for grayscale and colour images of three sizes."""
    recorded = np.load(REPO / "tests" / "metrics" / "references" / "inception.npz")
    ours = randomize_(FIDInceptionV3(), seed=PARITY_SEED)
    layout = json.loads(str(recorded["layout"]))
    assert {name: list(value.shape) for name, value in ours.state_dict().items()} == layout
    for shape, images in zip(PARITY_SHAPES, parity_images()):
        key = "x".join(map(str, shape))
        features, logits = ours(images)
        ref_features, ref_logits = (torch.from_numpy(recorded[f"{key}/{name}"]) for name in ("features", "logits"))
        scale = ref_features.abs().max().item()
        assert features.shape == ref_features.shape and scale > 0.1  # unit-scale activations, not vanished ones
        assert (features - ref_features).abs().max().item() <= 1e-5 * max(scale, 1.0), key
        assert torch.allclose(logits, ref_logits, rtol=0, atol=1e-5 * max(ref_logits.abs().max().item(), 1.0)), key
