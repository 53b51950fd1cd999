"""Springenberg 2015 preprocessing: GCN numerics, ZCA whitening (fitted on train only), and
the Keras augmentation layers (identity at inference, whole-pixel shifts and mirrors in
training)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsbench.config import DatasetConfig
from dsbench.data import preprocess
from dsbench.data.preprocess import (
    apply_zca,
    fit_zca,
    global_contrast_normalize,
    springenberg_preprocess,
)
from dsbench.data.splits import load_splits
from dsbench.errors import DsbenchError
from dsbench.frameworks.keras_model import augmentation_layers

# --- GCN -----------------------------------------------------------------------------------


def test_gcn_hand_example() -> None:
    x = np.array([[[[1], [2]], [[3], [4]]]], dtype=np.uint8)  # one 2×2×1 image
    out = global_contrast_normalize(x)
    # mean 2.5 -> (-1.5, -0.5, 0.5, 1.5), norm sqrt(5) -> multiplied by 55 / sqrt(5)
    expected = np.array([-1.5, -0.5, 0.5, 1.5]) * 55 / np.sqrt(5)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-6)
    # sqrt_bias goes inside the square root: divisor sqrt(10 + 5) / 55
    biased = global_contrast_normalize(x, sqrt_bias=10.0)
    np.testing.assert_allclose(biased.ravel(), np.array([-1.5, -0.5, 0.5, 1.5]) * 55 / np.sqrt(15))


def test_gcn_mean_zero_norm_scale() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    out = global_contrast_normalize(x).reshape(50, -1).astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 55, rtol=1e-5)
    # Per-image: brightness and contrast changes do not matter.
    again = global_contrast_normalize(x.astype(np.float64) * 0.5 + 7).reshape(50, -1)
    np.testing.assert_allclose(again, out, rtol=1e-4, atol=1e-4)


def test_gcn_constant_image_becomes_zero() -> None:
    x = np.full((2, 4, 4, 3), 9, dtype=np.uint8)  # norm 0 < min_divisor: divisor 1
    out = global_contrast_normalize(x)
    assert np.isfinite(out).all() and (out == 0).all()


def test_gcn_rejects_bad_arguments() -> None:
    with pytest.raises(DsbenchError, match="use scale > 0"):
        global_contrast_normalize(np.zeros((1, 4)), scale=0)
    with pytest.raises(DsbenchError, match="needs numeric images"):
        global_contrast_normalize(np.zeros(4))


# --- ZCA -----------------------------------------------------------------------------------


def _correlated_images(n: int, seed: int) -> np.ndarray:
    """n random 8×8×3 images (flattened, D = 192) with strongly correlated pixels.

    A random rotation of independent pixels with standard deviations spread log-uniformly over
    1 .. 30: variances 1 .. 900, so the covariance is far from white, and every direction's
    variance (>= ~0.5 in a sample of 2000) is far above eps = 1e-3.
    """
    rng = np.random.default_rng(seed)
    d = 192
    u, _ = np.linalg.qr(np.random.default_rng(123).normal(size=(d, d)))  # same basis always
    s = np.logspace(np.log10(30), 0, d)
    return rng.normal(size=(n, d)) @ (s[:, None] * u.T) + 5.0


def test_zca_whitens_training_covariance() -> None:
    x = _correlated_images(2000, seed=0)
    eps = 1e-3
    c = np.cov(x, rowvar=False, bias=True)
    assert np.abs(c - np.eye(192)).max() > 10  # far from white before
    mean, w = fit_zca(x, eps=eps)
    assert mean.dtype == np.float32 and w.dtype == np.float32
    np.testing.assert_allclose(w, w.T, atol=1e-5 * np.abs(w).max())  # zero-phase: symmetric
    y = apply_zca(x, mean, w)
    assert y.dtype == np.float32 and y.shape == x.shape
    y = y.astype(np.float64)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-3)
    cov = y.T @ y / len(y)
    # Exactly V diag(mu / (mu + eps)) V^T, mu the eigenvalues of the training covariance:
    # ≈ I in every direction with variance >> eps; here that is all of them (mu >= ~0.5).
    mu, v = np.linalg.eigh(c)
    big = mu > 100 * eps
    assert big.sum() == 192
    in_basis = v[:, big].T @ cov @ v[:, big]
    np.testing.assert_allclose(in_basis, np.eye(192), atol=0.011)
    np.testing.assert_allclose(cov, np.eye(192), atol=0.011)
    np.testing.assert_allclose(np.diag(in_basis), mu / (mu + eps), atol=1e-4)


@pytest.mark.parametrize("n", [50, 191, 192, 400], ids=lambda n: f"N={n}")
def test_zca_matches_pylearn2_formula(n: int) -> None:
    # Reference: pylearn2 ZCA.fit, written out. N < D (192) takes fit_zca's SVD route, N >= D
    # the covariance + eigh route: both must give this W.
    x = _correlated_images(n, seed=3)
    eps = 0.1
    mean_ref = x.mean(axis=0)
    c = x - mean_ref
    lam, v = np.linalg.eigh(c.T @ c / n + eps * np.eye(192))
    w_ref = (v * lam**-0.5) @ v.T
    mean, w = fit_zca(x, eps=eps)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6)
    np.testing.assert_allclose(w, w_ref, atol=1e-5 * np.abs(w_ref).max())


def test_zca_damps_directions_below_eps() -> None:
    # A direction with no variance is not blown up: its whitened variance is mu/(mu+eps) ≈ 0.
    x = _correlated_images(500, seed=1)
    x[:, 0] = 3.0  # constant pixel
    mean, w = fit_zca(x, eps=0.1)
    y = apply_zca(x, mean, w)
    assert np.isfinite(y).all()
    cov = np.cov(y.astype(np.float64), rowvar=False, bias=True)
    assert np.linalg.eigvalsh(cov).min() < 1e-6
    assert np.linalg.eigvalsh(cov).max() < 1.0 + 1e-4


def test_zca_keeps_image_shape_and_checks_it() -> None:
    x = _correlated_images(300, seed=2).astype(np.float32)
    mean, w = fit_zca(x)
    images = x.reshape(300, 8, 8, 3)
    out = apply_zca(images, mean, w)
    assert out.shape == (300, 8, 8, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(300, -1), apply_zca(x, mean, w), rtol=1e-6)
    with pytest.raises(DsbenchError, match="does not match the fitted transform"):
        apply_zca(np.zeros((2, 10)), mean, w)
    with pytest.raises(DsbenchError, match="flatten the images first"):
        fit_zca(images)
    with pytest.raises(DsbenchError, match="ZCA eps=0 is invalid"):
        fit_zca(x, eps=0)


# --- the whole pipeline on (generated) CIFAR splits ---------------------------------------


@pytest.fixture(scope="module")
def cifar_splits(cifar10_archive_dir: Path):
    folder = str(cifar10_archive_dir)
    return load_splits(DatasetConfig("cifar10", "archive", folder, verify_md5=False))


def test_springenberg_preprocess_float32_shapes(cifar_splits) -> None:
    out = springenberg_preprocess(cifar_splits)
    for name in ("x_train", "x_val", "x_test"):
        before, after = getattr(cifar_splits, name), getattr(out, name)
        assert after.dtype == np.float32 and after.shape == before.shape
        assert after.shape[1:] == (32, 32, 3) and np.isfinite(after).all()
        assert before.dtype == np.uint8  # the input splits are not modified
    for name in ("y_train", "y_val", "y_test"):
        assert getattr(out, name) is getattr(cifar_splits, name)
    assert out.info is cifar_splits.info and out.source == cifar_splits.source
    assert np.abs(out.x_train.reshape(len(out.x_train), -1).mean(axis=0)).max() < 1e-3


def test_springenberg_fits_on_train_only(cifar_splits, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[np.ndarray] = []
    real_fit = preprocess.fit_zca

    def spy(x: np.ndarray, eps: float = preprocess.ZCA_EPS):
        calls.append(np.array(x))
        return real_fit(x, eps)

    monkeypatch.setattr(preprocess, "fit_zca", spy)
    out = springenberg_preprocess(cifar_splits)
    assert len(calls) == 1  # one fit ...
    gcn_train = global_contrast_normalize(cifar_splits.x_train).reshape(90, -1)
    np.testing.assert_array_equal(calls[0], gcn_train)  # ... on the GCN'd training images
    mean, w = real_fit(gcn_train)
    for x, got in [(cifar_splits.x_val, out.x_val), (cifar_splits.x_test, out.x_test)]:
        want = apply_zca(global_contrast_normalize(x), mean, w)
        np.testing.assert_array_equal(got, want)  # val / test use the training statistics


def test_springenberg_empty_val(cifar10_archive_dir: Path) -> None:
    folder = str(cifar10_archive_dir)
    s = load_splits(DatasetConfig("cifar10", "archive", folder, val_fraction=0.0, verify_md5=False))
    out = springenberg_preprocess(s)
    assert out.x_val.shape == (0, 32, 32, 3) and out.x_val.dtype == np.float32


def test_preprocess_imports_no_tensorflow() -> None:
    code = (
        "import sys, dsbench.data.preprocess;"
        "bad = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules];"
        "sys.exit(', '.join(bad) or None)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- augmentation layers -------------------------------------------------------------------


def _apply(layers: list, x: np.ndarray, training: bool) -> np.ndarray:
    import keras

    for layer in layers:
        x = layer(x, training=training)
    return keras.ops.convert_to_numpy(x)


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` moved dy rows down and dx columns right, zero-filled (pad-and-crop)."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((2 * h, 2 * h), (2 * w, 2 * w), (0, 0)))
    return padded[2 * h - dy : 3 * h - dy, 2 * w - dx : 3 * w - dx]


def test_augmentation_identity_at_inference() -> None:
    import keras

    x = np.random.default_rng(0).normal(size=(6, 32, 32, 3)).astype(np.float32)
    layers = augmentation_layers(2, 32, True, seed=0)
    assert [type(layer).__name__ for layer in layers] == ["RandomTranslation", "RandomFlip"]
    np.testing.assert_array_equal(_apply(layers, x, training=False), x)
    # Inside a model: predict() runs with training=False.
    model = keras.Sequential([keras.Input((32, 32, 3)), *augmentation_layers(5, 32, True)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_augmentation_training_changes_images_keeps_shape() -> None:
    x = np.random.default_rng(1).normal(size=(16, 32, 32, 3)).astype(np.float32)
    out = _apply(augmentation_layers(2, 32, True, seed=3), x, training=True)
    assert out.shape == x.shape and out.dtype == np.float32
    changed = [not np.array_equal(o, i) for o, i in zip(out, x, strict=True)]
    assert sum(changed) >= 8


def test_translation_is_whole_pixel_pad_and_crop_uniform() -> None:
    k, size = 2, 8
    image = np.arange(1, size * size * 3 + 1, dtype=np.float32).reshape(size, size, 3)
    x = np.repeat(image[np.newaxis], 2000, axis=0)
    out = _apply(augmentation_layers(k, size, False, seed=7), x, training=True)
    shifts = [(dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1)]
    candidates = np.stack([_shifted(image, dy, dx) for dy, dx in shifts])
    match = (out[:, np.newaxis] == candidates[np.newaxis]).all(axis=(2, 3, 4))
    assert (match.sum(axis=1) == 1).all()  # every output is exactly one zero-filled shift
    counts = match.sum(axis=0).reshape(2 * k + 1, 2 * k + 1)
    # Each of the 5 shifts per axis about equally likely (1/5 each; 400 expected of 2000).
    for per_axis in (counts.sum(axis=1), counts.sum(axis=0)):
        assert per_axis.min() > 300 and per_axis.max() < 500, per_axis


def test_flip_mirrors_asymmetric_image() -> None:
    image = np.zeros((8, 8, 3), dtype=np.float32)
    image[2, 1, 0] = 1.0  # one red pixel, left of centre
    image[:, 0, 2] = 0.5  # blue left edge
    mirror = image[:, ::-1]
    x = np.repeat(image[np.newaxis], 16, axis=0)
    out = _apply(augmentation_layers(0, 8, True, seed=0), x, training=True)
    is_mirror = [np.array_equal(o, mirror) for o in out]
    is_same = [np.array_equal(o, image) for o in out]
    assert all(m or s for m, s in zip(is_mirror, is_same, strict=True))
    assert any(is_mirror) and any(is_same)
    assert out[is_mirror.index(True)][2, 6, 0] == 1.0  # the red pixel moved to column 8-1-1


@pytest.mark.parametrize(
    ("translate_px", "image_size"), [(-1, 32), (32, 32), (2.5, 32), (True, 32), (2, 0)]
)
def test_augmentation_rejects_bad_sizes(translate_px, image_size) -> None:
    with pytest.raises(DsbenchError, match="is invalid"):
        augmentation_layers(translate_px, image_size, True)


def test_augmentation_off() -> None:
    assert augmentation_layers(0, 32, False) == []
