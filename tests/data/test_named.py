"""Named data sets, tested on tiny hand-made files: no test touches the network."""

import gzip
import hashlib
import io
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganforge import cache
from ganforge.data import NAMED_DATASETS, load_dataset
from ganforge.data import named
from ganforge.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (magic 0x0803 for 3 dims, 0x0801 for 1), gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_mnist_like(monkeypatch, cache: Path, name: str, n_train=6, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    folder = cache / "datasets" / name
    folder.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        labels[:2] = [0, 1]  # at least two classes
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            file = f"{prefix}-{kind}-ubyte.gz"
            data = idx_bytes(array)
            (folder / file).write_bytes(data)
            monkeypatch.setitem(named.SHA256[name], file, sha(data))
        arrays[prefix] = (images, labels)
    return arrays


def test_named_list():
    assert set(NAMED_DATASETS) == {"mnist", "fashion-mnist", "cifar10"}


def test_mnist_from_cache(tmp_path, monkeypatch):
    arrays = write_mnist_like(monkeypatch, tmp_path, "mnist")
    data = load_dataset("mnist", cache_dir=tmp_path, progress=False)
    images, labels = arrays["train"]
    assert data.images.shape == (6, 1, 32, 32)
    assert data.labels.tolist() == labels.tolist()
    assert data.class_names == [str(d) for d in range(10)]
    assert data.geometry.fit == "pad" and (data.geometry.height, data.geometry.width) == (28, 28)
    assert np.array_equal(data.geometry.restore(data.images)[:, 0].numpy(), images)

    test = load_dataset("MNIST:test", cache_dir=tmp_path, progress=False)
    assert test.labels.tolist() == arrays["t10k"][1].tolist()
    assert len(load_dataset("mnist", cache_dir=tmp_path, limit=2, progress=False)) == 2


def test_fashion_mnist_class_names_and_env_cache(tmp_path, monkeypatch):
    write_mnist_like(monkeypatch, tmp_path, "fashion-mnist")
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    data = load_dataset("fashion-mnist", progress=False)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[-1] == "Ankle boot"
    assert len(data.class_names) == 10


def cifar_tarball(records: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in records.items():
            payload = data.tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{member}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_cifar10_binary_archive(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    records = {}
    for member in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (2, 3073), dtype=np.uint8)  # label byte + R, G, B planes
        rec[:, 0] = rng.integers(0, 10, 2)
        records[member] = rec
    records["data_batch_1.bin"][:, 0] = [3, 7]
    data = cifar_tarball(records)
    folder = tmp_path / "datasets" / "cifar10"
    folder.mkdir(parents=True)
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    monkeypatch.setitem(named.SHA256["cifar10"], "cifar-10-binary.tar.gz", sha(data))

    train = load_dataset("cifar10", cache_dir=tmp_path, progress=False)
    assert train.images.shape == (10, 3, 32, 32)
    assert train.labels[:2].tolist() == [3, 7]
    assert train.class_names[0] == "airplane" and train.class_names[9] == "truck"
    first = records["data_batch_1.bin"][0, 1:].reshape(3, 32, 32)  # (C, H, W)
    assert np.array_equal(train.images[0].numpy(), first)
    test = load_dataset("cifar10:test", cache_dir=tmp_path, progress=False)
    assert len(test) == 2


def test_offline_error_names_files_and_folder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cache.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as excinfo:
        load_dataset("fashion-mnist", cache_dir=tmp_path, progress=False)
    message = str(excinfo.value)
    folder = tmp_path / "datasets" / "fashion-mnist"
    assert "could not download fashion-mnist" in message and "network is unreachable" in message
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert named.SHA256["fashion-mnist"]["train-images-idx3-ubyte.gz"] in message
    assert str(folder) in message
    assert "\n" not in message
    assert not any(folder.iterdir())  # nothing half-written is left behind


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    files = {
        "train-images-idx3-ubyte.gz": idx_bytes(images),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.array([4, 2])),
    }
    for file, data in files.items():
        monkeypatch.setitem(named.SHA256["mnist"], file, sha(data))
    urls = []

    def serve(request, timeout):
        urls.append(request.full_url)
        assert timeout > 0
        return FakeResponse(files[request.full_url.rsplit("/", 1)[-1]])

    monkeypatch.setattr(cache.urllib.request, "urlopen", serve)
    data = load_dataset("mnist", cache_dir=tmp_path, progress=False)
    assert data.labels.tolist() == [4, 2]
    folder = tmp_path / "datasets" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no temporary files left
    assert urls[0].startswith("https://") and urls[0].endswith("/train-images-idx3-ubyte.gz")

    # a download whose content does not match is rejected and not kept
    (folder / "train-images-idx3-ubyte.gz").unlink()
    files["train-images-idx3-ubyte.gz"] = idx_bytes(images[:1])
    with pytest.raises(DataError, match="sha256"):
        load_dataset("mnist", cache_dir=tmp_path, progress=False)
    assert not (folder / "train-images-idx3-ubyte.gz").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["train-labels-idx1-ubyte.gz"]


def test_wrong_hash_in_cache_is_rejected(tmp_path, monkeypatch):
    write_mnist_like(monkeypatch, tmp_path, "mnist")
    path = tmp_path / "datasets" / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(np.zeros((1, 28, 28), np.uint8)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz has sha256 .* expected"):
        load_dataset("mnist", cache_dir=tmp_path, progress=False)


def test_bad_idx_magic(tmp_path, monkeypatch):
    write_mnist_like(monkeypatch, tmp_path, "mnist")
    path = tmp_path / "datasets" / "mnist" / "train-images-idx3-ubyte.gz"
    data = gzip.compress(b"\x00\x00\x09\x03" + b"\x00" * 20)
    path.write_bytes(data)
    monkeypatch.setitem(named.SHA256["mnist"], path.name, sha(data))
    with pytest.raises(DataError, match="magic"):
        load_dataset("mnist", cache_dir=tmp_path, progress=False)


def test_unknown_split():
    with pytest.raises(DataError, match="split"):
        load_dataset("mnist:valid", progress=False)


def test_a_folder_called_like_a_named_set_wins(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "mnist" / "a.png")
    monkeypatch.chdir(tmp_path)
    data = load_dataset("mnist", progress=False)
    assert data.images.shape == (1, 1, 16, 16)


def test_every_file_has_a_checksum():
    for name, spec in named.SPECS.items():
        for files in spec.splits.values():
            for file in files:
                assert len(named.SHA256[name][file]) == 64
