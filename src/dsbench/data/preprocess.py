"""Springenberg et al. (2015) input pipeline: GCN + ZCA whitening, and training augmentation.

"Striving for Simplicity: The All Convolutional Net" preprocesses CIFAR with global contrast
normalization and ZCA whitening "as in Goodfellow et al. (2013)" (maxout networks), i.e. the
pylearn2 pipeline `GlobalContrastNormalization(scale=55.)` then `ZCA()` (filter_bias 0.1):

- GCN, per image x (flattened to D values; pylearn2 `global_contrast_normalize` with
  subtract_mean=True, use_std=False)::

      c = x - mean(x)
      d = sqrt(sqrt_bias + sum(c ** 2)) / scale      # scale=55, sqrt_bias=0
      d = 1 if d < min_divisor else d                # min_divisor=1e-8: constant images -> 0
      gcn(x) = c / d

  so every non-constant image has mean 0 and Euclidean norm `scale` (55) afterwards.
- ZCA, fitted on the training split only (pylearn2 `ZCA.fit`): mean m over training images,
  C = (X - m)^T (X - m) / N, eigen-decomposition C + eps·I = V diag(λ) V^T, eps = 0.1
  (pylearn2's filter_bias), W = V diag(λ^-1/2) V^T (symmetric: "zero-phase"); every split is
  then mapped by x -> (x - m) W. The whitened training covariance is V diag(μ/(μ+eps)) V^T
  for the eigenvalues μ of C: ≈ I in directions whose variance is well above eps.

Both are computed on the NHWC-flattened pixels; they are unchanged by any fixed reordering
of the pixels (pylearn2 flattens CHW), so the result is the same up to that reordering.

Augmentation ("random translations and horizontal flips") is part of the model, not of the
data: `dsbench.frameworks.keras_model.augmentation_layers`, active on training batches only.

numpy only.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from dsbench.data.splits import Splits
from dsbench.errors import DsbenchError

GCN_SCALE = 55.0  # Goodfellow et al. 2013 (maxout), CIFAR-10
GCN_SQRT_BIAS = 0.0
GCN_MIN_DIVISOR = 1e-8
ZCA_EPS = 0.1  # pylearn2 ZCA filter_bias, used by the maxout CIFAR-10 pipeline
_CHUNK = 4096  # images processed at a time (bounds the float64 temporaries)


def global_contrast_normalize(
    x: np.ndarray,
    scale: float = GCN_SCALE,
    sqrt_bias: float = GCN_SQRT_BIAS,
    min_divisor: float = GCN_MIN_DIVISOR,
) -> np.ndarray:
    """Per-image GCN (formula in the module docstring); float32, same shape as `x`.

    `x` is (N, ...) with any per-image shape (NHWC images or flat vectors), any real dtype
    (uint8 pixels 0..255 as loaded). Computed in float64, returned as float32.
    """
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DsbenchError(
            f"global_contrast_normalize needs numeric images (N, ...), got {x.dtype} {x.shape}"
        )
    if not scale > 0 or sqrt_bias < 0 or min_divisor < 0:
        raise DsbenchError(
            f"GCN scale={scale}, sqrt_bias={sqrt_bias}, min_divisor={min_divisor} are invalid: "
            "use scale > 0, sqrt_bias >= 0, min_divisor >= 0"
        )
    flat = x.reshape(len(x), int(np.prod(x.shape[1:])))  # also for N = 0
    out = np.empty(flat.shape, dtype=np.float32)
    for start in range(0, len(flat), _CHUNK):
        c = flat[start : start + _CHUNK].astype(np.float64)
        c -= c.mean(axis=1, keepdims=True)
        divisor = np.sqrt(sqrt_bias + np.square(c).sum(axis=1)) / scale
        divisor[divisor < min_divisor] = 1.0
        out[start : start + _CHUNK] = c / divisor[:, np.newaxis]
    return out.reshape(x.shape)


def fit_zca(x_train_flat: np.ndarray, eps: float = ZCA_EPS) -> tuple[np.ndarray, np.ndarray]:
    """Fit ZCA whitening on the *training* examples only: returns (mean, W), float32.

    `x_train_flat` is (N, D). mean is (D,), W is (D, D) and symmetric; apply the same pair
    to every split with `apply_zca` (never re-fit on validation or test data). The covariance
    is accumulated in float64 chunks; `eps` (> 0) is added to its eigenvalues before the
    inverse square root, so directions with variance << eps are damped, not blown up.
    With N >= D (full CIFAR: 45,000 × 3,072) the cost is the D×D covariance and its
    eigen-decomposition (about a minute on 2 CPU cores); with N < D an SVD of the data.
    """
    x = np.asarray(x_train_flat)
    if x.ndim != 2 or len(x) < 2 or not np.issubdtype(x.dtype, np.number):
        raise DsbenchError(
            f"fit_zca needs training data (N, D) with N >= 2, got {x.dtype} {x.shape}: "
            "flatten the images first (x.reshape(len(x), -1))"
        )
    if not (isinstance(eps, numbers.Real) and eps > 0):
        raise DsbenchError(f"ZCA eps={eps!r} is invalid: use a number > 0 (pylearn2 uses 0.1)")
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    if n < d:
        # Fewer examples than dimensions (small subsets, tests): C has rank < n; its
        # eigenvectors with non-zero eigenvalues are the right singular vectors of the centred
        # data (eigenvalues s²/n), every other direction has eigenvalue 0, i.e. eps after the
        # shift. Same W as below, in O(n²·d) instead of O(d³).
        centred = x.astype(np.float64) - mean
        _check_finite(centred)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        scale = 1 / np.sqrt(s**2 / n + eps) - 1 / np.sqrt(eps)
        w = (vt.T * scale) @ vt
        w[np.diag_indices(d)] += 1 / np.sqrt(eps)
    else:
        cov = np.zeros((d, d), dtype=np.float64)
        for start in range(0, n, _CHUNK):
            c = x[start : start + _CHUNK].astype(np.float64) - mean
            cov += c.T @ c
        _check_finite(cov)
        cov /= n
        cov[np.diag_indices(d)] += eps
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        w = (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T
    return mean.astype(np.float32), w.astype(np.float32)


def _check_finite(a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise DsbenchError("fit_zca: training data holds NaN or inf values: check the inputs")


def apply_zca(x: np.ndarray, mean: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(x - mean) @ W for a fitted (mean, W); float32, same shape as `x`.

    `x` is (N, D) or (N, ...) images whose flattened size is D (the result keeps the shape).
    """
    x = np.asarray(x)
    d = len(mean)
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != d or w.shape != (d, d):
        raise DsbenchError(
            f"apply_zca: data {x.shape} does not match the fitted transform (mean {mean.shape}, "
            f"W {w.shape}): apply it to data shaped like the training data"
        )
    flat = x.reshape(len(x), d)
    out = np.empty(flat.shape, dtype=np.float32)
    for start in range(0, len(flat), _CHUNK):
        out[start : start + _CHUNK] = (flat[start : start + _CHUNK].astype(np.float32) - mean) @ w
    return out.reshape(x.shape)


def springenberg_preprocess(
    splits: Splits, gcn_scale: float = GCN_SCALE, zca_eps: float = ZCA_EPS
) -> Splits:
    """GCN every image, fit ZCA on the training split, whiten train, val and test with it.

    Returns a copy of `splits` whose images are float32 NHWC (same shapes); labels, info and
    source are unchanged. The ZCA statistics come from `splits.x_train` only, i.e. after the
    validation split and `train_subset` (the validation and test images never influence it).
    On full CIFAR (45,000 training images, D = 3,072) the fit costs one D×D covariance and
    eigen-decomposition: about a minute and ~1 GB of memory on 2 CPU cores.
    """
    n_train = len(splits.x_train)
    train = global_contrast_normalize(splits.x_train, scale=gcn_scale).reshape(n_train, -1)
    mean, w = fit_zca(train, eps=zca_eps)

    def transform(x: np.ndarray) -> np.ndarray:
        return apply_zca(global_contrast_normalize(x, scale=gcn_scale), mean, w)

    return dataclasses.replace(
        splits,
        x_train=apply_zca(train, mean, w).reshape(splits.x_train.shape),
        x_val=transform(splits.x_val),
        x_test=transform(splits.x_test),
    )
