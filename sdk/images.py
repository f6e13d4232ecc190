"""Reading images from disk and checking frames handed to us, with clear errors.

There is one decoder for every path that reads files (training, calibration,
scoring, folder sources): Pillow.  Two decoders can give different pixels for
the same JPEG, which is train/serve skew, so nothing else decodes image files.
Pillow also reads only the header first, so a 20000×20000 image is refused
before its pixels are allocated.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leukedge.errors import InvalidImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 50_000_000  # ~ a 8K×6K frame; 3 bytes a pixel is 150 MB


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an H×W×3 uint8 RGB array.

    Every Pillow mode is either converted or refused (:data:`COLOUR_MODES`,
    :data:`GRAYSCALE_MODES`):

    - RGB as is; RGBX without its padding byte; RGBA, and palette images
      (P, PA, with their transparency) composited onto black, the C-NMC
      background; RGBa (alpha already multiplied in) as is;
    - CMYK through its embedded ICC profile to sRGB where it has one (a
      profile that cannot be read is refused), else by Pillow's plain
      conversion; YCbCr, LAB and HSV by Pillow's conversion;
    - refused with :class:`InvalidImageError`: grayscale modes (1, L, LA,
      La, I, I;16…, F: colour carries the stain), any other mode, missing,
      empty, truncated or non-image files, and images over ``max_pixels``.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow is a core dependency; kept lazy for import time

    p = Path(path)
    _check_file(p)
    try:
        with Image.open(p) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise InvalidImageError(
                    f"{p}: image is {w}×{h} ({w * h / 1e6:.0f} MP), above the limit of {max_pixels / 1e6:.0f} MP",
                    hint="cut the image into tiles (for example 2048×2048) or raise --max-pixels",
                )
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
            return as_rgb8(np.asarray(_rgb_image(img, p)), name=str(p))
    except Image.DecompressionBombError as exc:  # Pillow refuses > 2× its own limit at open()
        raise InvalidImageError(
            f"{p}: image is above the limit of {max_pixels / 1e6:.0f} MP ({exc})",
            hint="cut the image into tiles (for example 2048×2048) or raise --max-pixels",
        ) from exc
    except FileNotFoundError as exc:  # removed between the check and the read
        raise InvalidImageError(f"{p}: no such file (was it moved or deleted?)") from exc
    except PermissionError as exc:
        raise InvalidImageError(f"{p}: permission denied", hint="check the file's permissions") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            f"{p}: not a readable image (expected PNG, JPEG, BMP or TIFF)",
            hint="check the file type; rename or remove files that are not images",
        ) from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        # Pillow raises OSError("image file is truncated ...") for cut-off files.
        raise InvalidImageError(
            f"{p}: image is corrupt or truncated ({exc})",
            hint="re-export or re-copy the file; a partial download or an interrupted copy looks like this",
        ) from exc


def _check_file(p: Path) -> None:
    """One stat() call, so a file removed while we look gives a clear error, not a traceback."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if p.is_symlink():
            raise InvalidImageError(f"{p}: {_dangling_link_reason(p)}", hint="fix or remove the link") from None
        raise InvalidImageError(f"{p}: no such file (was it moved or deleted?)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidImageError(f"{p}: {_dangling_link_reason(p)}", hint="fix or remove the link") from None
        raise InvalidImageError(f"{p}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidImageError(f"{p}: is a folder, expected an image file")
    if not os.access(p, os.R_OK):
        if not os.path.lexists(p):
            raise InvalidImageError(f"{p}: no such file (was it moved or deleted?)")
        raise InvalidImageError(f"{p}: permission denied", hint="check the file's permissions")
    if st.st_size == 0:
        raise InvalidImageError(f"{p}: file is empty (0 bytes)", hint="re-copy the file")


GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")
# Colour modes and how each becomes RGB (or RGBA, composited onto black by as_rgb8).
COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


def _rgb_image(img: Any, p: Path) -> Any:
    """``img`` as a Pillow image of mode RGB or RGBA, or :class:`InvalidImageError` saying why not."""
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return img
    if mode in ("RGBX", "RGBa"):  # padding byte, or alpha already multiplied in (= composited onto black)
        return img.convert("RGB") if mode == "RGBX" else _channels(img, 3)
    if mode in ("P", "PA"):
        return img.convert("RGBA")  # the palette's (or tRNS) transparency becomes alpha
    if mode == "CMYK" and img.info.get("icc_profile"):
        return _cmyk_with_profile(img, p)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        try:
            return img.convert("RGB")
        except ValueError as exc:  # an older Pillow without this conversion
            raise InvalidImageError(
                f"{p}: this Pillow cannot convert colour mode {mode} to RGB ({exc})",
                hint="save the image as RGB (PNG or TIFF), or upgrade Pillow",
            ) from exc
    if mode in GRAYSCALE_MODES:
        raise InvalidImageError(
            f"{p}: image is grayscale (mode {mode}); leukedge classifies stained cells by colour "
            "and needs an RGB image",
            hint="export the image in colour (RGB)",
        )
    raise InvalidImageError(
        f"{p}: image mode {mode} is not one leukedge reads (colour modes: {', '.join(COLOUR_MODES)})",
        hint="save the image as 8-bit RGB (PNG or TIFF)",
    )


def _channels(img: Any, n: int) -> Any:
    from PIL import Image

    return Image.merge("RGB", img.split()[:n])


def _cmyk_with_profile(img: Any, p: Path) -> Any:
    """CMYK to sRGB through the image's own ICC profile: ink values mean nothing without it."""
    import io

    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
        return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        raise InvalidImageError(
            f"{p}: CMYK image whose embedded ICC profile cannot be used ({exc})",
            hint="export the image as RGB (sRGB), or with a valid CMYK profile",
        ) from exc


def as_rgb8(arr: np.ndarray, *, name: str = "frame") -> np.ndarray:
    """Check an in-memory frame and return it as contiguous H×W×3 uint8 RGB.

    Accepts H×W×3 or H×W×4 (alpha composited onto black), uint8 or uint16
    (scaled by 1/257).  Anything else raises :class:`InvalidImageError`
    naming the shape and dtype received.
    """
    if not isinstance(arr, np.ndarray):
        raise InvalidImageError(f"{name}: expected a numpy array, got {type(arr).__name__}")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InvalidImageError(
            f"{name}: expected an H×W×3 RGB array, got shape {arr.shape}",
            hint="pass colour frames as height × width × 3 (RGB)",
        )
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise InvalidImageError(f"{name}: frame of {arr.shape[1]}×{arr.shape[0]} pixels is too small")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 + 32767) // 65535  # exact rounding of v/257
        arr = arr.astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InvalidImageError(
            f"{name}: expected dtype uint8 (or uint16), got {arr.dtype}",
            hint="convert with arr.astype(numpy.uint8) after scaling to 0..255",
        )
    if arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.uint16)
        arr = ((arr[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _dangling_link_reason(p: Path) -> str:
    """Why a symbolic link cannot be followed: a loop, or a missing target."""
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        return f"broken symbolic link (its target {os.readlink(p)!r} does not exist)"
    return "symbolic link"


@dataclass
class FileListing:
    """What :func:`iter_image_files` left out, and why; pass one in to learn it."""

    duplicates: list[tuple[Path, Path]] = field(default_factory=list)  # (path left out, the path kept)
    ignored: list[Path] = field(default_factory=list)  # found by a folder walk or a pattern, not an image suffix
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # folders that could not be listed, and why

    def record_unreadable(self, exc: OSError) -> None:
        """``os.walk``'s ``onerror``: without it a folder that cannot be listed is skipped silently."""
        self.unreadable.append((Path(exc.filename or "?"), exc.strerror or str(exc)))


def iter_image_files(inputs: list[str | os.PathLike[str]], *, listing: FileListing | None = None) -> list[Path]:
    """Expand files, folders (recursively) and globs into a sorted, de-duplicated list of image paths.

    Files named directly are always listed (reading them says what is wrong);
    files found by walking a folder or matching a pattern must have an image
    suffix.  Paths reaching the same file (a symlink, the file and its folder,
    the same name twice) are listed once.  Neither folder walks nor ``**``
    follow symbolic links to folders, so a link loop cannot recurse forever;
    a link loop named as a file is listed, and reading it says it is a loop.
    A folder that cannot be listed (permissions, I/O error) is recorded in
    ``listing.unreadable``: callers count it as an input not scored.
    """
    return [Path(s) for s in list_image_paths(inputs, listing=listing)]


def list_image_paths(inputs: list[str | os.PathLike[str]], *, listing: FileListing | None = None) -> list[str]:
    """:func:`iter_image_files` as plain strings: ~10× less memory than ``Path`` objects for large listings."""
    found: dict[str, str] = {}  # resolved path -> the path as the user spelled it
    report = listing if listing is not None else FileListing()

    def add(path: str, *, named: bool) -> None:
        if not named and os.path.splitext(path)[1].lower() not in IMAGE_SUFFIXES:
            report.ignored.append(Path(path))
            return
        key = _resolved(path)
        if key in found:
            report.duplicates.append((Path(path), Path(found[key])))
        else:
            found[key] = path

    for item in inputs:
        s = str(item)
        p = Path(s)
        if any(ch in s for ch in "*?["):
            matches = _glob(s)
            if not matches:
                raise InvalidImageError(f"{s}: the pattern matches no file")
            for m in matches:
                if m.is_file() or (m.is_symlink() and not m.exists()):
                    add(str(m), named=False)
        elif p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False, onerror=report.record_unreadable):
                dirs.sort()
                for f in sorted(files):
                    add(str(Path(root, f)), named=False)
        elif p.exists() or p.is_symlink():
            add(str(p), named=True)
        else:
            raise InvalidImageError(f"{s}: no such file or folder")
    # Sorted as Paths sort (folder by folder): the separator sorts before every other character.
    return sorted(found.values(), key=lambda v: v.replace(os.sep, "\0"))


def no_images_error(inputs: list[str | os.PathLike[str]] | tuple, listing: FileListing) -> InvalidImageError:
    """The error for inputs that hold no image: says which folders could not even be read."""
    named = ", ".join(str(i) for i in inputs)
    if listing.unreadable:
        shown = "; ".join(f"{p}: {why}" for p, why in listing.unreadable[:3])
        return InvalidImageError(
            f"no image files found in: {named}; {len(listing.unreadable)} folder(s) could not be read ({shown})",
            hint="check the folders' permissions (ls -ld), or run as a user who may read them",
        )
    return InvalidImageError(
        f"no image files (PNG, JPEG, BMP, TIFF) found in: {named}",
        hint="pass image files, folders holding them, or patterns such as 'slides/**/*.png'",
    )


def _resolved(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symlink loop (Python < 3.13 raises RuntimeError)
        return os.path.abspath(path)


def _glob(pattern: str) -> list[Path]:
    """Paths matching ``pattern``; ``**`` matches folders at any depth without following folder links.

    ``glob.glob(recursive=True)`` follows folder links, so two link loops in
    one folder make it run (near) forever; ``pathlib`` does not follow them.
    """
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    base = Path(*parts[:first]) if first else Path()
    rest = list(parts[first:])
    if rest[-1] == "**":
        rest.append("*")  # "dir/**" means everything below dir, as glob.glob reads it
    return sorted(base.glob("/".join(rest)))
