import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ganforge.data import BUILTIN_DATASETS, DataInfo, ImageDataset, dataset_info, load_dataset
from ganforge.data.geometry import fit_images
from ganforge.errors import DataError

from helpers import shared_file


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def load(source, **kw) -> ImageDataset:
    return load_dataset(str(source), progress=False, **kw)


def hwc(data: ImageDataset, i: int) -> np.ndarray:
    return data.images[i].permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------
# folders


def test_folder_with_two_classes_is_labelled(tmp_path):
    images = {name: rgb(32, 32, seed=k) for k, name in enumerate(["cats/b.png", "cats/a.png", "dogs/c.png"])}
    for name, a in images.items():
        save(tmp_path / name, a)
    data = load(tmp_path)
    assert isinstance(data, ImageDataset) and len(data) == 3
    assert data.images.shape == (3, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.images.is_contiguous() and data.images.device.type == "cpu"
    assert data.class_names == ["cats", "dogs"]
    assert data.labels.tolist() == [0, 0, 1] and data.labels.dtype == torch.int64
    # sorted order, pixels kept exactly
    for i, name in enumerate(["cats/a.png", "cats/b.png", "dogs/c.png"]):
        assert np.array_equal(hwc(data, i), images[name])
    g = data.geometry
    assert (g.resolution, g.height, g.width, g.fit, g.channels) == (32, 32, 32, "pad", 3)
    assert data.source == str(tmp_path) and data.skipped == []


def test_single_nested_class_is_unlabelled(tmp_path):
    save(tmp_path / "only" / "sub" / "a.png", rgb(32, 32))
    save(tmp_path / "only" / "b.png", rgb(32, 32, 1))
    data = load(tmp_path)
    assert len(data) == 2 and data.labels is None and data.class_names == []


def test_images_beside_class_folders_are_unlabelled(tmp_path):
    save(tmp_path / "x" / "a.png", rgb(32, 32))
    save(tmp_path / "y" / "b.png", rgb(32, 32))
    save(tmp_path / "loose.png", rgb(32, 32))
    data = load(tmp_path)
    assert len(data) == 3 and data.labels is None


def test_hidden_and_other_files_are_ignored(tmp_path):
    save(tmp_path / "a.PNG", rgb(32, 32))
    save(tmp_path / ".hidden.png", rgb(32, 32))
    save(tmp_path / ".cache" / "c.png", rgb(32, 32))
    save(tmp_path / "__MACOSX" / "d.png", rgb(32, 32))
    (tmp_path / "notes.txt").write_text("not an image")
    data = load(tmp_path)
    assert len(data) == 1 and data.skipped == []


def test_limit_keeps_the_first_files_in_sorted_order(tmp_path):
    arrays = [rgb(32, 32, seed=k) for k in range(5)]
    for k, a in enumerate(arrays):
        save(tmp_path / f"img{k}.png", a)
    data = load(tmp_path, limit=2)
    assert len(data) == 2
    assert np.array_equal(hwc(data, 1), arrays[1])


# ---------------------------------------------------------------------------
# zip archives


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return path


def png_bytes(array: np.ndarray, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_zip_with_common_top_folder_has_classes(tmp_path):
    a, b, c = rgb(32, 32, 1), rgb(32, 32, 2), rgb(32, 32, 3)
    archive = make_zip(
        tmp_path / "set.zip",
        {
            "set/train/bird/1.png": png_bytes(a),
            "set/train/bird/2.png": png_bytes(b),
            "set/train/cat/1.png": png_bytes(c),
            "__MACOSX/set/train/cat/._1.png": b"junk",
            "set/train/.DS_Store": b"junk",
            "set/README.txt": b"hello",
        },
    )
    data = load(archive)
    assert data.class_names == ["bird", "cat"]
    assert data.labels.tolist() == [0, 0, 1]
    assert np.array_equal(hwc(data, 2), c)


def test_file_that_is_not_a_zip(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="not a readable zip"):
        load(bad)


# ---------------------------------------------------------------------------
# npz / npy


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts(tmp_path, layout):
    base = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 3), dtype=np.uint8)  # (N, H, W, C)
    array = {"NHW": base[..., 0], "NHWC": base, "NCHW": base.transpose(0, 3, 1, 2)}[layout]
    labels = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "d.npz", images=array, labels=labels)
    data = load(tmp_path / "d.npz")
    channels = 1 if layout == "NHW" else 3
    assert data.images.shape == (6, channels, 32, 32)
    assert data.labels.tolist() == labels.tolist() and data.class_names == ["0", "1", "2"]
    g = data.geometry
    assert (g.height, g.width, g.fit, g.channels) == (28, 28, "pad", channels)
    restored = g.restore(data.images).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    assert np.array_equal(restored, base[..., :channels])


def test_npz_alternative_keys_and_class_names(tmp_path):
    x = np.zeros((4, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "xy.npz", x_train=x, y_train=np.array([1, 0, 1, 0]))
    data = load(tmp_path / "xy.npz")
    assert data.images.shape == (4, 1, 16, 16) and data.labels.tolist() == [1, 0, 1, 0]
    np.savez(tmp_path / "named.npz", images=x, labels=np.array([0, 1, 0, 1]), class_names=np.array(["cat", "dog"]))
    assert load(tmp_path / "named.npz").class_names == ["cat", "dog"]
    np.savez(tmp_path / "one.npz", pixels=x)  # a single array, whatever its name
    assert load(tmp_path / "one.npz").labels is None
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataError, match="keys: a, b"):
        load(tmp_path / "two.npz")


def test_npy_file(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 4), dtype=np.uint8)
    np.save(tmp_path / "d.npy", x)
    data = load(tmp_path / "d.npy", limit=2)
    assert data.images.shape == (2, 4, 32, 32) and data.labels is None
    assert np.array_equal(hwc(data, 1), x[1])


def test_npz_pixel_types(tmp_path):
    floats = np.linspace(0, 1, 2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    np.save(tmp_path / "f.npy", floats)
    data = load(tmp_path / "f.npy")
    assert data.images.dtype == torch.uint8 and data.images.max() == 255 and data.images.min() == 0
    np.save(tmp_path / "signed.npy", floats * 2 - 1)
    with pytest.raises(DataError, match="float32"):
        load(tmp_path / "signed.npy")
    np.save(tmp_path / "wide.npy", np.full((2, 16, 16), 1000, dtype=np.int32))
    with pytest.raises(DataError, match="int32"):
        load(tmp_path / "wide.npy")
    np.save(tmp_path / "shape.npy", np.zeros((2, 5, 5, 5), dtype=np.uint8))
    with pytest.raises(DataError, match="shape"):
        load(tmp_path / "shape.npy")


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a plain numpy array file"):
        load(tmp_path / "objects.npy")


def test_npz_with_bad_labels(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 16, 16), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="labels"):
        load(tmp_path / "d.npz")


# ---------------------------------------------------------------------------
# decoding


def gradient(h=16, w=16):
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


def test_colour_modes(tmp_path):
    gray = gradient()
    colour = rgb(16, 16)
    rgba = np.dstack([colour, gradient()])
    cases = {}  # file -> (expected channels, expected (H, W, C) pixels)
    cases["gray.png"] = (1, gray[..., None])
    save(tmp_path / "gray.png", gray)
    cases["rgba.png"] = (4, rgba)
    save(tmp_path / "rgba.png", rgba)
    la = Image.fromarray(np.dstack([gray, 255 - gray]), mode="LA")
    la.save(tmp_path / "la.png")
    cases["la.png"] = (2, np.dstack([gray, 255 - gray]))
    # palette without and with transparency
    palette = Image.fromarray(colour).quantize(8)
    palette.save(tmp_path / "pal.png")
    cases["pal.png"] = (3, np.asarray(palette.convert("RGB")))
    palette.save(tmp_path / "pal_t.png", transparency=0)
    cases["pal_t.png"] = (4, np.asarray(Image.open(tmp_path / "pal_t.png").convert("RGBA")))
    # 16-bit gray: value / 257
    deep = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    cases["deep.png"] = (1, (deep // 257).astype(np.uint8)[..., None])
    # 1-bit
    bits = gray > 127
    Image.fromarray(bits).save(tmp_path / "bits.png")
    cases["bits.png"] = (1, (bits * 255).astype(np.uint8)[..., None])
    for name, (channels, expected) in cases.items():
        single = tmp_path / name.replace(".png", "")
        single.mkdir()
        (tmp_path / name).rename(single / name)
        data = load(single)
        assert data.geometry.channels == channels, name
        assert data.images.shape == (1, channels, 16, 16), name
        assert np.array_equal(hwc(data, 0), expected), name


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.fromarray(rgb(16, 16)).convert("CMYK").save(tmp_path / "c.jpg")
    data = load(tmp_path)
    assert data.images.shape == (1, 3, 16, 16)
    assert np.array_equal(hwc(data, 0), np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB")))  # Pillow's colours


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored 32 wide x 16 high, shown 16 wide x 32 high
    Image.fromarray(rgb(16, 32)).save(tmp_path / "r.jpg", exif=exif.tobytes())
    data = load(tmp_path, resolution=32, fit="pad")
    assert (data.geometry.height, data.geometry.width) == (32, 16)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "r.jpg")))  # (32, 16, 3): rotated, not mirrored
    assert shown.shape == (32, 16, 3)
    assert np.array_equal(data.geometry.restore(data.images)[0].permute(1, 2, 0).numpy(), shown)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    data = load(tmp_path)
    assert len(data) == 1 and int(data.images.float().mean()) in range(5, 16)


# ---------------------------------------------------------------------------
# the size policy


def test_28_pads_to_32_and_restores_exactly(tmp_path):
    originals = [np.random.default_rng(k).integers(0, 256, (28, 28), dtype=np.uint8) for k in range(3)]
    for k, a in enumerate(originals):
        save(tmp_path / f"{k}.png", a)
    data = load(tmp_path)
    g = data.geometry
    assert data.images.shape == (3, 1, 32, 32)
    assert (g.resolution, g.height, g.width, g.fit) == (32, 28, 28, "pad")
    restored = g.restore(data.images)
    assert restored.shape == (3, 1, 28, 28)
    for k, a in enumerate(originals):
        assert np.array_equal(restored[k, 0].numpy(), a)


def test_non_square_mixed_sizes_are_cropped(tmp_path):
    half = np.zeros((20, 40, 3), np.uint8)
    half[:, :20, 0] = 255  # red left half
    half[:, 20:, 2] = 255  # blue right half
    save(tmp_path / "a.png", half)
    save(tmp_path / "b.png", half)
    save(tmp_path / "c.png", rgb(50, 30))
    data = load(tmp_path)
    g = data.geometry
    # most common size 20 x 40 -> longer side 40 -> 64; 20 < 3/4 of 64 -> crop
    assert data.images.shape == (3, 3, 64, 64)
    assert (g.resolution, g.fit, g.height, g.width) == (64, "crop", None, None)
    first = hwc(data, 0)
    assert tuple(first[32, 2]) == (255, 0, 0) and tuple(first[32, 61]) == (0, 0, 255)


def test_explicit_resize_round_trip(tmp_path):
    for k in range(2):
        save(tmp_path / f"{k}.png", rgb(20, 40, k))
    data = load(tmp_path, resolution=32, fit="resize")
    assert data.images.shape == (2, 3, 32, 32) and data.geometry.fit == "resize"
    originals = torch.stack([torch.from_numpy(rgb(20, 40, k)).permute(2, 0, 1) for k in range(2)])
    assert torch.equal(data.images, fit_images(originals, 32, "resize"))  # the files' pixels, stretched
    assert data.geometry.restore(data.images).shape == (2, 3, 20, 40)


def test_explicit_pad_letterboxes_large_images(tmp_path):
    save(tmp_path / "wide.png", rgb(300, 600))
    data = load(tmp_path, resolution=64, fit="pad")
    assert data.images.shape == (1, 3, 64, 64)
    original = torch.from_numpy(rgb(300, 600)).permute(2, 0, 1)[None]
    assert torch.equal(data.images, fit_images(original, 64, "pad"))  # shrunk to 64 x 32, edges repeated
    assert data.geometry.restore(data.images).shape == (1, 3, 300, 600)


def test_second_pass_and_memory_bound_give_the_same_pixels(tmp_path, monkeypatch):
    from ganforge.data import decode, files, policy

    for k, (h, w) in enumerate([(20, 40), (20, 40), (50, 30), (64, 64), (20, 40)]):
        save(tmp_path / f"{k}.png", rgb(h, w, k))
    decoded, flushed = [], []
    decode_image, flush = decode.decode_image, policy.Fitter._flush
    monkeypatch.setattr(decode, "decode_image", lambda *a, **k: decoded.append(1) or decode_image(*a, **k))
    monkeypatch.setattr(policy.Fitter, "_flush", lambda self, key: flushed.append(len(self.pending[key])) or
                        flush(self, key))
    first = load(tmp_path)
    assert decoded == [] and flushed  # small images: decoded once, in the first pass
    # nothing kept from the first pass, and every decoded image fitted at once
    monkeypatch.setattr(files, "_KEEP_BYTES", 0)
    monkeypatch.setattr(policy, "_PENDING_BYTES", 1)
    decoded.clear()
    flushed.clear()
    second = load(tmp_path)
    assert len(decoded) == 5  # every image decoded again in the second pass
    assert flushed == [1, 1, 1, 1]  # each one fitted as it came (the 64 x 64 one needs no fitting)
    assert torch.equal(first.images, second.images)
    assert first.geometry == second.geometry


def test_small_images_are_decoded_once(tmp_path, monkeypatch):
    """The first pass keeps small images decoded, so that a typical data set is decoded exactly once."""
    from ganforge.data import decode

    for k, (h, w) in enumerate([(20, 40), (20, 40), (50, 30), (64, 64), (20, 40)]):
        save(tmp_path / f"{k}.png", rgb(h, w, k))
    decoded, read = [], []
    decode_image, read_image = decode.decode_image, decode.read_image
    monkeypatch.setattr(decode, "decode_image", lambda *a, **k: decoded.append(1) or decode_image(*a, **k))
    monkeypatch.setattr(decode, "read_image", lambda *a, **k: read.append(1) or read_image(*a, **k))
    assert len(load(tmp_path)) == 5
    assert len(read) == 5  # the patches are in effect: every file went through the first pass
    assert decoded == []  # no second decode of any file


def test_large_jpegs_take_the_reduced_scale_path(tmp_path, monkeypatch):
    from ganforge.data import decode

    y, x = np.mgrid[0:1024, 0:1024]
    smooth = np.dstack([x // 4, y // 4, (x + y) // 8]).astype(np.uint8)
    save(tmp_path / "big.jpg", smooth, quality=95)
    decodes = []
    decode_image = decode.decode_image

    def recorded(fp, shrink_to=None):
        image, drafted = decode_image(fp, shrink_to)
        decodes.append((image.shape, drafted))
        return image, drafted

    monkeypatch.setattr(decode, "decode_image", recorded)
    data = load(tmp_path, resolution=32)
    assert decodes == [((128, 128, 3), True)]  # decoded at 1/8 scale: twice the 32 px target, not 1024 px
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(smooth).permute(2, 0, 1)[None].float(), size=(32, 32), mode="bicubic", antialias=True
    )
    assert (data.images.float() - reference).abs().mean() < 4.0


@pytest.mark.parametrize("resolution", [48, 512, 8, 0])
def test_bad_resolution(tmp_path, resolution):
    save(tmp_path / "a.png", rgb(32, 32))
    with pytest.raises(DataError, match="power of two"):
        load(tmp_path, resolution=resolution)


def test_bad_options(tmp_path):
    save(tmp_path / "a.png", rgb(32, 32))
    with pytest.raises(DataError, match="fit"):
        load(tmp_path, fit="stretch")
    with pytest.raises(DataError, match="channels"):
        load(tmp_path, channels=5)
    with pytest.raises(DataError, match="limit"):
        load(tmp_path, limit=0)


# ---------------------------------------------------------------------------
# damaged files and channel mixes


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    for k in range(10):
        save(tmp_path / f"ok{k}.png", rgb(32, 32, k))
    (tmp_path / "zz_bad.png").write_bytes(b"definitely not a png")
    with pytest.warns(UserWarning, match="skipped 1 of 11"):
        data = load(tmp_path)
    assert len(data) == 10
    assert [name for name, _ in data.skipped] == ["zz_bad.png"]


def test_truncated_file_found_while_decoding(tmp_path):
    for k in range(10):
        save(tmp_path / f"ok{k}.jpg", rgb(32, 32, k))
    good = (tmp_path / "ok0.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning):
        data = load(tmp_path)
    assert len(data) == 10 and data.skipped[0][0] == "cut.jpg"


def test_too_many_corrupt_files_is_an_error(tmp_path):
    for k in range(7):
        save(tmp_path / f"ok{k}.png", rgb(32, 32, k))
    for k in range(3):
        (tmp_path / f"bad{k}.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="3 of 10 files could not be read") as excinfo:
        load(tmp_path)
    assert "bad0.png" in str(excinfo.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load(tmp_path, max_bad_fraction=0.5)) == 7


def test_mixed_channels_need_a_choice(tmp_path):
    gray = gradient(32, 32)
    save(tmp_path / "a.png", gray)
    save(tmp_path / "b.png", gray)
    save(tmp_path / "c.png", rgb(32, 32))
    with pytest.raises(DataError, match="--channels 3") as excinfo:
        load(tmp_path)
    assert "1 channel (2 files)" in str(excinfo.value) and "3 channels (1 file)" in str(excinfo.value)
    data = load(tmp_path, channels=3)
    assert data.images.shape == (3, 3, 32, 32) and data.geometry.channels == 3
    assert np.array_equal(hwc(data, 0), np.repeat(gray[..., None], 3, axis=2))
    as_gray = load(tmp_path, channels=1)
    expected = np.asarray(Image.open(tmp_path / "c.png").convert("L"))
    assert np.array_equal(hwc(as_gray, 2)[..., 0], expected)  # same luma as Pillow


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:8, :, :3] = (255, 0, 0)
    rgba[:8, :, 3] = 255  # opaque red top, fully transparent black bottom
    save(tmp_path / "logo.png", rgba)
    data = load(tmp_path, channels=3)
    pixels = hwc(data, 0)
    assert tuple(pixels[0, 0]) == (255, 0, 0) and tuple(pixels[15, 0]) == (255, 255, 255)


# ---------------------------------------------------------------------------
# sources that do not exist or hold nothing


def test_missing_empty_and_unsupported_sources(tmp_path):
    with pytest.raises(DataError, match="no such file or folder: .*nowhere"):
        load(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no image files in .*empty"):
        load(empty)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no image files in .*texts.*a.txt"):
        load(texts)
    (tmp_path / "table.csv").write_text("1,2")
    with pytest.raises(DataError, match="unsupported data source .*table.csv"):
        load(tmp_path / "table.csv")
    with pytest.raises(DataError, match="unknown built-in"):
        load("builtin:nothing")


# ---------------------------------------------------------------------------
# dataset_info


def test_dataset_info_reports_corrupt_files(tmp_path):
    for k in range(3):
        save(tmp_path / "a" / f"{k}.png", rgb(32, 32, k))
    save(tmp_path / "b" / "x.png", gradient(28, 30))
    (tmp_path / "b" / "broken.png").write_bytes(b"nope")
    info = dataset_info(str(tmp_path), progress=False)
    assert isinstance(info, DataInfo)
    assert info.count == 4
    assert info.sizes == {(32, 32): 3, (28, 30): 1}
    assert info.channels == {3: 3, 1: 1}
    assert info.classes == {"a": 3, "b": 1}
    assert [name for name, _ in info.unreadable] == ["b/broken.png"]
    text = info.format()
    assert "b/broken.png" in text and "28x30" in text and "a (3)" in text


def test_dataset_info_lists_ten_unreadable_files(tmp_path):
    save(tmp_path / "ok.png", rgb(16, 16))
    for k in range(12):
        (tmp_path / f"bad{k:02d}.png").write_bytes(b"nope")
    info = dataset_info(str(tmp_path), progress=False)
    assert info.count == 1 and len(info.unreadable) == 12
    text = info.format()
    assert "bad09.png" in text and "bad10.png" not in text and "... and 2 more" in text


def test_dataset_info_on_arrays_and_missing_paths(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((5, 28, 28), np.uint8), labels=np.array([0, 1, 1, 1, 0]))
    info = dataset_info(str(tmp_path / "d.npz"))
    assert info.count == 5 and info.sizes == {(28, 28): 5} and info.classes == {"0": 2, "1": 3}
    with pytest.raises(DataError):
        dataset_info(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        dataset_info(str(tmp_path / "empty"))


# ---------------------------------------------------------------------------
# built-in set through load_dataset


def test_builtin_shapes_source():
    assert "builtin:shapes" in BUILTIN_DATASETS
    data = load("builtin:shapes", limit=50)
    assert data.images.shape == (50, 3, 32, 32) and data.labels.shape == (50,)
    assert data.class_names == ["circle", "square", "triangle", "ring", "cross"]
    g = data.geometry
    assert (g.resolution, g.height, g.width, g.channels) == (32, 32, 32, 3)
    big = load("builtin:shapes", limit=4, resolution=64, channels=1)
    assert big.images.shape == (4, 1, 64, 64)
    assert torch.equal(big.labels, data.labels[:4])


# ---------------------------------------------------------------------------
# the shared benchmark files (skipped where absent)


def test_shared_data_sets():
    fashion, cifar = shared_file("fashion-mnist.npz"), shared_file("cifar10-test-jpeg.zip")
    data = load(fashion, limit=1000)
    assert data.images.shape == (1000, 1, 32, 32)
    assert (data.geometry.height, data.geometry.width, data.geometry.fit) == (28, 28, "pad")
    assert len(data.class_names) == 10 and data.labels.shape == (1000,)
    data = load(cifar, limit=500)
    assert data.images.shape == (500, 3, 32, 32)
    assert len(data.class_names) == 10 and data.class_names[0] == "airplane"
    assert data.skipped == []


def test_public_names_stay_importable_from_sources():
    """The loaders live in data.files / decode / policy / arrays / types; data.sources still offers the public names."""
    from ganforge.data import sources

    for name in ("AUTO_RESOLUTION_RANGE", "BUILTIN_DATASETS", "DEFAULT_DATASET", "FIT_CHOICES", "IMAGE_EXTENSIONS",
                 "DataInfo", "ImageDataset", "convert_channels", "dataset_info", "load_dataset"):
        assert name in sources.__all__ and hasattr(sources, name), name
    assert sources.ImageDataset is ImageDataset and sources.DataInfo is DataInfo
