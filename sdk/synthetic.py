"""Seeded synthetic cells and smear frames, for tests, benchmarks and the demo.

A fresh checkout has no real images, so the project draws its own.  Two
classes differ the way lymphoblasts differ from normal lymphocytes:

* ``all`` (lymphoblast): larger, a thin rim of cytoplasm (high
  nucleus-to-cytoplasm ratio), fine even chromatin with pale nucleoli;
* ``hem`` (normal lymphocyte): smaller, a wider rim, coarse clumped chromatin.

Sizes are in pixels at C-NMC magnification (cells ~150–250 px across on a
450 px canvas).  Smear frames put such cells, red cells with central pallor
and platelets on a pale background, and return where every white cell is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from leukedge.types import BBox

CLASSES = ("hem", "all")


@dataclass(frozen=True)
class CellLook:
    radius: tuple[float, float]  # cell radius range, px
    nucleus_ratio: tuple[float, float]  # nucleus radius / cell radius
    grain_px: float  # chromatin blotch size
    grain_amplitude: float  # chromatin contrast
    nucleoli: tuple[int, int]  # count range


LOOKS = {
    "all": CellLook(radius=(88, 118), nucleus_ratio=(0.84, 0.92), grain_px=4.0, grain_amplitude=14.0, nucleoli=(1, 3)),
    "hem": CellLook(radius=(62, 90), nucleus_ratio=(0.68, 0.78), grain_px=11.0, grain_amplitude=34.0, nucleoli=(0, 0)),
}

NUCLEUS_RGB = np.array([105.0, 80.0, 190.0], np.float32)
CYTOPLASM_RGB = np.array([176.0, 168.0, 206.0], np.float32)
BACKGROUND_RGB = np.array([206.0, 208.0, 204.0], np.float32)
RBC_RGB = np.array([206.0, 150.0, 148.0], np.float32)
PLATELET_RGB = np.array([140.0, 110.0, 200.0], np.float32)


@dataclass(frozen=True)
class SyntheticCell:
    """A white cell drawn into a synthetic frame: its class and its true box."""

    label: str
    bbox: BBox
    cx: float
    cy: float
    radius: float


def _outline(rng: np.random.Generator, cx: float, cy: float, r: float, wobble: float) -> np.ndarray:
    """A closed, slightly irregular round outline as int32 polygon points."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    rr = np.full_like(t, r)
    for k in (2, 3, 5):
        rr += r * wobble / k * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    return np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], axis=1).round().astype(np.int32)


def _noise(rng: np.random.Generator, h: int, w: int, grain: float) -> np.ndarray:
    """Smooth noise in about [-1, 1] with blotches of ``grain`` px."""
    small = rng.standard_normal((max(2, int(h / grain)), max(2, int(w / grain)))).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / 1.5, -1.5, 1.5)


def draw_white_cell(
    img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, label: str, *, scale: float = 1.0
) -> SyntheticCell:
    """Draw one white cell of class ``label`` centred at (cx, cy) into ``img`` (float32 RGB, in place)."""
    look = LOOKS[label]
    r = rng.uniform(*look.radius) * scale
    pad = int(r * 1.2) + 2
    x0, y0 = int(cx) - pad, int(cy) - pad
    size = 2 * pad + 1
    cell_mask = np.zeros((size, size), np.uint8)
    nuc_mask = np.zeros((size, size), np.uint8)
    lx, ly = cx - x0, cy - y0
    cv2.fillPoly(cell_mask, [_outline(rng, lx, ly, r, 0.05)], 1)
    nr = r * rng.uniform(*look.nucleus_ratio)
    off = (r - nr) * 0.5
    ang = rng.uniform(0, 2 * np.pi)
    cv2.fillPoly(nuc_mask, [_outline(rng, lx + off * np.cos(ang), ly + off * np.sin(ang), nr, 0.06)], 1)
    nuc_mask &= cell_mask

    patch = np.empty((size, size, 3), np.float32)
    cyto = CYTOPLASM_RGB + rng.normal(0, 4, 3).astype(np.float32)
    patch[:] = cyto + 6.0 * _noise(rng, size, size, 6.0)[..., None]
    chroma = _noise(rng, size, size, look.grain_px * scale) * look.grain_amplitude
    nucleus = NUCLEUS_RGB + rng.normal(0, 5, 3).astype(np.float32) + chroma[..., None]
    for _ in range(int(rng.integers(look.nucleoli[0], look.nucleoli[1] + 1))):
        ox, oy = rng.normal(0, nr * 0.3, 2)
        cv2.circle(nucleus, (int(lx + ox), int(ly + oy)), max(2, int(nr * 0.12)), (150.0, 135.0, 205.0), -1)
    patch = np.where(nuc_mask[..., None] > 0, nucleus, patch)

    # Clip the patch to the image and paste through the cell mask.
    H, W = img.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x0 + size), min(H, y0 + size)
    if sx0 < sx1 and sy0 < sy1:
        m = cell_mask[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0].astype(bool)
        img[sy0:sy1, sx0:sx1][m] = patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][m]
    ys, xs = np.nonzero(cell_mask)
    bx0, by0 = max(0, x0 + int(xs.min())), max(0, y0 + int(ys.min()))
    bx1, by1 = min(W, x0 + int(xs.max()) + 1), min(H, y0 + int(ys.max()) + 1)
    return SyntheticCell(label, BBox(bx0, by0, bx1 - bx0, by1 - by0), float(cx), float(cy), float(r))


def make_cell_image(seed: int | np.random.Generator, label: str, *, size: int = 450) -> np.ndarray:
    """One C-NMC-style image: a single cell of class ``label`` centred on black (uint8 RGB, size×size)."""
    if label not in LOOKS:
        raise ValueError(f"label must be one of {sorted(LOOKS)}, got {label!r}")
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    draw_white_cell(img, rng, size / 2 + rng.normal(0, 5), size / 2 + rng.normal(0, 5), label, scale=size / 450)
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    img[img.max(axis=2) < 20] = 0  # keep the background pure black, as C-NMC's is
    return np.clip(img + rng.normal(0, 1.5, img.shape).astype(np.float32) * (img > 0), 0, 255).astype(np.uint8)


def make_smear_frame(
    seed: int | np.random.Generator,
    *,
    width: int = 1280,
    height: int = 720,
    cells: int = 6,
    p_all: float = 0.5,
    rbc_density: float = 0.35,
    platelets: int = 8,
    scale: float = 1.0,
    touching: int = 0,
) -> tuple[np.ndarray, list[SyntheticCell]]:
    """A smear frame (uint8 RGB, height×width) and the white cells in it.

    ``cells`` white cells are placed without overlap; ``touching`` of them are
    placed against a neighbour, to exercise splitting.  ``rbc_density`` is the
    fraction of the area covered by red cells.
    """
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    img[:] = BACKGROUND_RGB
    img += _noise(rng, height, width, 40.0)[..., None] * 3.0
    _draw_red_cells(img, rng, rbc_density, scale)
    for _ in range(platelets):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        cv2.ellipse(
            img,
            (int(x), int(y)),
            (int(rng.uniform(5, 9) * scale), int(rng.uniform(4, 7) * scale)),
            float(rng.uniform(0, 180)),
            0,
            360,
            tuple(float(v) for v in PLATELET_RGB),
            -1,
        )
    placed: list[SyntheticCell] = []
    for i in range(cells):
        label = "all" if rng.random() < p_all else "hem"
        pos = _free_spot(rng, placed, width, height, scale, touch=i > 0 and i <= touching)
        if pos is None:
            break
        placed.append(draw_white_cell(img, rng, pos[0], pos[1], label, scale=scale))
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    noise = np.empty_like(img)
    cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))  # cv2.randn is ~10x faster than numpy here
    cv2.randn(noise, 0.0, 2.0)
    img += noise
    return np.clip(img, 0, 255).astype(np.uint8), placed


def _draw_red_cells(img: np.ndarray, rng: np.random.Generator, density: float, scale: float) -> None:
    h, w = img.shape[:2]
    r_mean = 48 * scale
    n = int(density * h * w / (np.pi * r_mean**2))
    rim = tuple(float(v) for v in RBC_RGB - 18)
    body = tuple(float(v) for v in RBC_RGB)
    pallor = tuple(float(v) for v in (RBC_RGB + BACKGROUND_RGB) / 2)
    for _ in range(n):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        r = int(rng.uniform(0.85, 1.15) * r_mean)
        cv2.circle(img, (x, y), r, rim, -1)
        cv2.circle(img, (x, y), int(r * 0.88), body, -1)
        cv2.circle(img, (x, y), int(r * 0.38), pallor, -1)


def _free_spot(
    rng: np.random.Generator, placed: list[SyntheticCell], w: int, h: int, scale: float, *, touch: bool
) -> tuple[float, float] | None:
    margin = 125 * scale
    if w <= 2 * margin or h <= 2 * margin:
        return None
    for _ in range(400):
        if touch and placed:
            other = placed[-1]
            ang = rng.uniform(0, 2 * np.pi)
            d = other.radius + 80 * scale
            x, y = other.cx + d * np.cos(ang), other.cy + d * np.sin(ang)
            if not (margin <= x <= w - margin and margin <= y <= h - margin):
                continue
            if all(np.hypot(x - c.cx, y - c.cy) > c.radius + 70 * scale for c in placed[:-1]):
                return float(x), float(y)
            continue
        x, y = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
        if all(np.hypot(x - c.cx, y - c.cy) > c.radius + 150 * scale for c in placed):
            return float(x), float(y)
    return None


def write_cell_dataset(
    out: str | Path,
    *,
    per_class: int = 50,
    subjects_per_class: int = 5,
    seed: int = 0,
    size: int = 450,
    suffix: str = ".png",
) -> Path:
    """Write a C-NMC-style folder ``out/{all,hem}/UID_<subject>_<image>_<cell>_<class>.png``.

    ALL subjects are numbered 1…n, normal donors H1…Hn, as in C-NMC.  Returns ``out``.
    """
    from PIL import Image

    root = Path(out)
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            subj = i % subjects_per_class + 1
            sid = f"H{subj}" if label == "hem" else str(subj)
            img = make_cell_image(rng, label, size=size)
            Image.fromarray(img).save(root / label / f"UID_{sid}_{i // subjects_per_class + 1}_1_{label}{suffix}")
    return root
