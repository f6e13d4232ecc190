from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from leukedge.errors import InvalidImageError
from leukedge.images import read_image
from leukedge.manifest import LogSpec, Preprocessing
from leukedge.preprocess import LAPLACIAN_KERNELS, border_code, gaussian_kernel_1d, log_sharpen, preprocess


@pytest.mark.parametrize("aperture", [1, 3])
def test_explicit_laplacian_kernels_are_opencvs(aperture: int, rng) -> None:
    img = rng.uniform(0, 255, (40, 50)).astype(np.float32)
    ref = cv2.Laplacian(img, cv2.CV_32F, ksize=aperture, borderType=cv2.BORDER_REFLECT_101)
    mine = cv2.filter2D(img, cv2.CV_32F, LAPLACIAN_KERNELS[aperture], borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(mine, ref, atol=1e-3)  # float32 sums of values up to ~2000


def test_aperture_3_is_the_diagonal_kernel_not_the_4_neighbour_one() -> None:
    assert LAPLACIAN_KERNELS[3].tolist() == [[2, 0, 2], [0, -8, 0], [2, 0, 2]]
    assert LAPLACIAN_KERNELS[1].tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]


def test_log_sharpen_is_the_documented_formula(rng) -> None:
    log = LogSpec(alpha=0.4, gaussian_ksize=7, gaussian_sigma=1.5, laplacian_aperture=1, border="replicate")
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    f = img.astype(np.float32)
    g = cv2.GaussianBlur(f, (7, 7), 1.5, borderType=cv2.BORDER_REPLICATE)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    expected = np.clip(f - 0.4 * lap, 0, 255)
    np.testing.assert_allclose(log_sharpen(img, log), expected, atol=1e-3)
    assert border_code("replicate") == cv2.BORDER_REPLICATE
    assert gaussian_kernel_1d(log).sum() == pytest.approx(1.0, abs=1e-6)


def test_disabled_log_is_identity(rng) -> None:
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(log_sharpen(img, LogSpec(enabled=False)), img.astype(np.float32))


@pytest.mark.shared_data
def test_preprocess_real_cell_shape_range_and_sharpening(cnmc_dir) -> None:
    img = read_image(next((cnmc_dir / "all").glob("*.png")))
    spec = Preprocessing()
    x = preprocess([img], spec)
    assert x.shape == (1, 128, 128, 3) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    plain = preprocess([img], replace(spec, log=LogSpec(enabled=False)))
    # Sharpening raises local contrast: the high-pass energy grows.
    hp = lambda a: np.abs(cv2.Laplacian(a[0], cv2.CV_32F)).mean()  # noqa: E731
    assert hp(x) > 1.2 * hp(plain)


def test_where_the_log_runs_changes_the_result(rng) -> None:
    img = rng.integers(0, 256, (450, 450, 3), dtype=np.uint8)
    at_input = preprocess([img], Preprocessing())
    at_source = preprocess([img], replace(Preprocessing(), log=replace(LogSpec(), apply_at="source")))
    assert at_input.shape == at_source.shape
    assert np.abs(at_input - at_source).max() > 0.05


def test_channel_order_and_layout(rng) -> None:
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    base = preprocess([img], Preprocessing())
    bgr = preprocess([img], replace(Preprocessing(), channel_order="BGR"))
    nchw = preprocess([img], replace(Preprocessing(), layout="NCHW"))
    np.testing.assert_array_equal(bgr, base[..., ::-1])
    np.testing.assert_array_equal(nchw, base.transpose(0, 3, 1, 2))


def test_empty_batch_and_bad_crops() -> None:
    assert preprocess([], Preprocessing()).shape == (0, 128, 128, 3)
    with pytest.raises(InvalidImageError, match="expected an H×W×3 uint8 RGB crop, got shape \\(10, 10\\)"):
        preprocess([np.zeros((10, 10), np.uint8)], Preprocessing())
    with pytest.raises(InvalidImageError, match="dtype float64"):
        preprocess([np.zeros((10, 10, 3))], Preprocessing())
