from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from leukedge.errors import InvalidImageError
from leukedge.images import as_rgb8, iter_image_files, read_image


def _png(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path)
    return path


def test_rgb_png_and_jpeg(tmp_path, rng) -> None:
    arr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_png(tmp_path / "a.png", arr)), arr)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    assert read_image(tmp_path / "a.jpg").shape == (20, 30, 3)


def test_zero_byte_file(tmp_path) -> None:
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty \\(0 bytes\\)"):
        read_image(tmp_path / "z.png")


def test_non_image_file(tmp_path) -> None:
    (tmp_path / "notes.png").write_text("these are my notes")
    with pytest.raises(InvalidImageError, match="not a readable image"):
        read_image(tmp_path / "notes.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path, rng, suffix) -> None:
    arr = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    full = tmp_path / f"full{suffix}"
    Image.fromarray(arr).save(full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        read_image(cut)


def test_grayscale_is_refused_with_reason(tmp_path) -> None:
    p = _png(tmp_path / "g.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(InvalidImageError, match="grayscale") as err:
        read_image(p)
    assert "RGB" in (err.value.hint or "")


def test_16_bit_grayscale_is_refused(tmp_path) -> None:
    p = tmp_path / "g16.png"
    Image.fromarray(np.full((20, 20), 4000, np.uint16)).save(p)
    with pytest.raises(InvalidImageError, match="grayscale"):
        read_image(p)


def test_16_bit_colour_array_is_scaled() -> None:
    arr = np.full((10, 10, 3), 65535, np.uint16)
    arr[0, 0] = (0, 257, 32768)
    out = as_rgb8(arr)
    assert out.dtype == np.uint8 and out[1, 1].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [0, 1, 128]


def test_rgba_is_composited_on_black(tmp_path) -> None:
    arr = np.full((10, 10, 4), 200, np.uint8)
    arr[..., 3] = 0
    arr[0, 0, 3] = 255
    out = read_image(_png(tmp_path / "a.png", arr))
    assert out.shape == (10, 10, 3)
    assert out[0, 0].tolist() == [200, 200, 200] and out[5, 5].tolist() == [0, 0, 0]


def test_huge_image_is_refused_before_decoding(tmp_path) -> None:
    p = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(p)  # 1-bit: small to make, 400 MP when decoded as RGB
    with pytest.raises(InvalidImageError, match="above the limit of 50 MP") as err:
        read_image(p)
    assert "tiles" in (err.value.hint or "")
    big = tmp_path / "big.png"
    Image.new("1", (9000, 9000)).save(big)  # 81 MP: under Pillow's own limit, over ours
    with pytest.raises(InvalidImageError, match="9000×9000 \\(81 MP\\), above the limit"):
        read_image(big)


def test_missing_and_folder(tmp_path) -> None:
    with pytest.raises(InvalidImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InvalidImageError, match="is a folder"):
        read_image(tmp_path)


def test_permission_denied(tmp_path, rng, monkeypatch) -> None:
    p = _png(tmp_path / "a.png", rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))
    p.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the check see what a user would
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(InvalidImageError, match="permission denied"):
        read_image(p)


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((10, 10), np.uint8), "expected an H×W×3 RGB array, got shape \\(10, 10\\)"),
        (np.zeros((10, 10, 3), np.float32), "expected dtype uint8 \\(or uint16\\), got float32"),
        (np.zeros((4, 4, 3), np.uint8), "too small"),
        ([[1, 2, 3]], "expected a numpy array, got list"),
    ],
)
def test_bad_frames(arr, match) -> None:
    with pytest.raises(InvalidImageError, match=match):
        as_rgb8(arr)


def test_iter_image_files_recurses_sorts_and_dedupes(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    for name in ["b/2.png", "1.jpg", "b/notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    files = iter_image_files([tmp_path, tmp_path / "1.jpg", str(tmp_path / "*.jpg")])
    assert [f.name for f in files] == ["1.jpg", "2.png"]
    with pytest.raises(InvalidImageError, match="matches no file"):
        iter_image_files([str(tmp_path / "*.bmp")])
    with pytest.raises(InvalidImageError, match="no such file or folder"):
        iter_image_files([tmp_path / "missing"])


# --- every mode Pillow has: converted to the right colour, or refused with a reason -------------------

COLOUR = (200, 100, 50)  # an eosin-ish orange: any channel mix-up or a dropped ink shows
FORMATS = {"PNG": ".png", "TIFF": ".tif", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp"}


def _saved_in_every_format(tmp_path, mode: str) -> list:
    """(path, mode Pillow reads back) of the COLOUR square in ``mode``, in each format that stores it."""
    base = Image.new("RGB", (24, 24), COLOUR)
    try:
        img = base.convert(mode)
    except ValueError:
        img = Image.new(mode, (24, 24))
    out = []
    for fmt, suffix in FORMATS.items():
        path = tmp_path / f"{mode.replace(';', '_')}{suffix}"
        try:
            img.save(path, fmt)
            with Image.open(path) as back:
                back.load()
                out.append((path, back.mode))
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # this format cannot hold this mode
    return out


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_pillow_mode_is_converted_or_refused_with_a_reason(tmp_path, mode: str) -> None:
    from leukedge.images import COLOUR_MODES, GRAYSCALE_MODES

    assert mode in COLOUR_MODES or mode in GRAYSCALE_MODES  # a new Pillow mode must be decided, not guessed
    for path, read_mode in _saved_in_every_format(tmp_path, mode):
        if read_mode in GRAYSCALE_MODES:
            with pytest.raises(InvalidImageError, match=rf"grayscale \(mode {re.escape(read_mode)}\)"):
                read_image(path)
            continue
        arr = read_image(path)
        assert arr.shape == (24, 24, 3) and arr.dtype == np.uint8
        if mode in GRAYSCALE_MODES:  # a grey square the format stored as colour (WEBP): grey it stays
            assert len(set(arr[12, 12].tolist())) == 1, (path.name, read_mode, arr[12, 12])
            continue
        if mode in ("P", "PA") or read_mode in ("P", "PA"):
            continue  # a palette of a new image: colour depends on the quantizer, checked below
        tolerance = 12 if path.suffix in (".jpg", ".webp") else 2
        assert np.abs(arr[12, 12].astype(int) - COLOUR).max() <= tolerance, (path.name, read_mode, arr[12, 12])


def test_cmyk_jpeg_and_tiff_are_not_black(tmp_path) -> None:
    rgb = Image.new("RGB", (24, 24), COLOUR)
    for suffix in (".jpg", ".tif"):
        rgb.convert("CMYK").save(tmp_path / f"c{suffix}")
        with Image.open(tmp_path / f"c{suffix}") as img:
            assert img.mode == "CMYK"
        assert np.abs(read_image(tmp_path / f"c{suffix}")[5, 5].astype(int) - COLOUR).max() <= 8


def test_cmyk_with_an_unusable_icc_profile_is_refused(tmp_path) -> None:
    from PIL import ImageCms

    path = tmp_path / "c.jpg"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # an RGB profile on CMYK ink
    for icc in (b"not a profile", srgb):
        Image.new("RGB", (24, 24), COLOUR).convert("CMYK").save(path, icc_profile=icc)
        with pytest.raises(InvalidImageError, match="CMYK image whose embedded ICC profile cannot be used"):
            read_image(path)


def test_palette_with_transparency_is_composited_onto_black(tmp_path) -> None:
    img = Image.new("P", (24, 24))
    img.putpalette([*COLOUR, 0, 255, 0] + [0] * 762)
    img.paste(1, (0, 0, 12, 24))  # left half index 1 (green), right half index 0 (COLOUR)
    img.info["transparency"] = 1
    img.save(tmp_path / "p.png", transparency=1)
    arr = read_image(tmp_path / "p.png")
    assert tuple(arr[5, 18]) == COLOUR and tuple(arr[5, 5]) == (0, 0, 0)


def test_read_image_docstring_names_every_mode() -> None:
    from leukedge.images import COLOUR_MODES, GRAYSCALE_MODES

    doc = read_image.__doc__ or ""
    for mode in COLOUR_MODES + GRAYSCALE_MODES:
        assert mode.split(";")[0] in doc, mode
