"""The cache root and the verified downloader: no test touches the network (file:// URLs and fakes)."""
import hashlib
import http.client
import io
import urllib.error
from pathlib import Path

import pytest

from ganforge import cache
from ganforge.cache import DownloadError, cache_root, download, sha256_of
from ganforge.errors import GanforgeError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fake home folder, with $GANFORGE_CACHE unset."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GANFORGE_CACHE", raising=False)
    return home


# ---------------------------------------------------------------------------
# cache_root


def test_default_is_under_home(home):
    assert cache_root() == home / ".cache" / "ganforge"


def test_env_var_is_used_and_expanded(home, monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "env-cache"))
    assert cache_root() == tmp_path / "env-cache"
    monkeypatch.setenv("GANFORGE_CACHE", "~/somewhere")
    assert cache_root() == home / "somewhere"
    monkeypatch.setenv("GANFORGE_CACHE", "")  # empty: not set
    assert cache_root() == home / ".cache" / "ganforge"


def test_explicit_dir_wins_and_is_expanded(home, monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "env-cache"))
    assert cache_root(tmp_path / "mine") == tmp_path / "mine"
    assert cache_root(str(tmp_path / "mine")) == tmp_path / "mine"
    assert cache_root("~/mine") == home / "mine"
    assert cache_root("") == tmp_path / "env-cache"  # empty: not given
    assert cache_root(None) == tmp_path / "env-cache"
    assert not (tmp_path / "mine").exists()  # nothing is created


def test_named_sets_and_weights_share_the_root(home, monkeypatch):
    from ganforge.data import named
    from ganforge.metrics import inception

    monkeypatch.setenv("GANFORGE_CACHE", "~/c")
    assert named.dataset_folder("mnist") == home / "c" / "datasets" / "mnist"
    assert named.default_cache_dir() == home / "c"
    assert inception.weights_path() == home / "c" / "weights" / inception.INCEPTION_WEIGHTS_FILE
    assert inception.weights_path("~/w").parent == home / "w" / "weights"


# ---------------------------------------------------------------------------
# download


def served(tmp_path, data: bytes, name="served.bin") -> str:
    path = tmp_path / "server" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path.as_uri()


def test_sha256_of(tmp_path):
    data = b"x" * (3 << 20) + b"tail"  # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(tmp_path / "f") == sha(data)


def test_download_verifies_and_moves_into_place(tmp_path):
    data = b"hello weights" * 1000
    dest = tmp_path / "cache" / "weights" / "w.bin"  # the folders do not exist yet
    assert download(served(tmp_path, data), dest, sha(data).upper(), progress=False) == dest
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["w.bin"]  # no temporary file left


def test_wrong_sha_raises_and_leaves_nothing(tmp_path):
    dest = tmp_path / "cache" / "w.bin"
    url = served(tmp_path, b"not what was promised")
    with pytest.raises(DownloadError) as info:
        download(url, dest, sha(b"the real content"), progress=False)
    message = str(info.value)
    assert isinstance(info.value, GanforgeError)
    assert "sha256" in message and sha(b"the real content") in message
    assert url in message and str(dest) in message and "\n" not in message
    assert list(dest.parent.iterdir()) == []  # no partial or temporary file


def test_next_url_is_tried_and_every_failure_is_named(tmp_path):
    data = b"content"
    missing = (tmp_path / "server" / "missing.bin").as_uri()
    good = served(tmp_path, data)
    dest = tmp_path / "cache" / "c.bin"
    download([missing, good], dest, sha(data), progress=False)
    assert dest.read_bytes() == data

    dest.unlink()
    with pytest.raises(DownloadError) as info:
        download([missing, good], dest, sha(b"other"), progress=False)
    urls = [url for url, _ in info.value.failures]
    assert urls == [missing, good]
    assert "sha256" in info.value.failures[1][1]
    message = str(info.value)
    assert missing in message and good in message and str(dest) in message and "\n" not in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_offline_error_is_one_line_naming_the_file_and_where_to_place_it(tmp_path, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(cache.urllib.request, "urlopen", offline)
    dest = tmp_path / "cache" / "weights.pth"
    with pytest.raises(DownloadError) as info:
        download("https://example.org/weights.pth", dest, sha(b""), progress=False)
    assert str(info.value) == (
        f"could not download weights.pth from https://example.org/weights.pth (network unreachable); "
        f"place the file at {dest}"
    )
    assert list(dest.parent.iterdir()) == []


class BrokenResponse(io.BytesIO):
    """Serves some bytes, then the connection drops."""

    headers = {"Content-Length": "100000000"}

    def read(self, size=-1):
        if self.tell():
            raise http.client.IncompleteRead(b"", 99_000_000)
        return super().read(size)


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    requests = []

    def serve(request, timeout=None):
        requests.append((request.full_url, request.get_header("User-agent"), timeout))
        return BrokenResponse(b"x" * 1000)

    monkeypatch.setattr(cache.urllib.request, "urlopen", serve)
    dest = tmp_path / "cache" / "big.bin"
    with pytest.raises(DownloadError, match="IncompleteRead"):
        download("https://example.org/big.bin", dest, sha(b"x" * 1000), progress=False)
    assert list(dest.parent.iterdir()) == []
    assert requests[0][0] == "https://example.org/big.bin" and requests[0][1] and requests[0][2] > 0


def test_an_existing_file_is_replaced_only_by_verified_content(tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with pytest.raises(DownloadError):
        download(served(tmp_path, b"bad"), dest, sha(b"good"), progress=False)
    assert dest.read_bytes() == b"old"
    download(served(tmp_path, b"good", "good.bin"), dest, sha(b"good"), progress=False)
    assert dest.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "server"]


def test_paths_are_accepted_as_strings(tmp_path):
    dest = tmp_path / "s.bin"
    assert download(served(tmp_path, b"s"), str(dest), sha(b"s"), progress=False) == Path(dest)
