"""The data set hwprune trains and prunes its reference models on.

scikit-learn's bundled handwritten digits (UCI optdigits test set, Alpaydin & Kaynak
1998): 1,797 grey-scale 8x8 images of the digits 0-9, pixel values 0-16. The data ships
inside the scikit-learn package; nothing is downloaded.

Split: stratified by class, 80% train / 20% test (1,437 / 360 images), drawn with a
seeded ``numpy`` generator so that a seed gives the same split everywhere. Pixels are
scaled to [0, 1] (divided by 16). No validation split is held out: hwprune's recipes
are fixed, not tuned on the test set per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Dataset:
    """Images as float32 ``(n, 1, 8, 8)`` in [0, 1], labels as int64 ``(n,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    description: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """The handwritten digits, split as described in the module docstring."""
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(y.size, dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        take = int(round(test_fraction * members.size))
        test[rng.choice(members, size=take, replace=False)] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    test_idx = np.flatnonzero(test)
    return Dataset(
        name="digits", x_train=x[train_idx], y_train=y[train_idx], x_test=x[test_idx],
        y_test=y[test_idx], classes=10,
        description=(f"scikit-learn handwritten digits, 8x8, stratified {1 - test_fraction:.0%}/"
                     f"{test_fraction:.0%} split (seed {seed}): {train_idx.size} train, "
                     f"{test_idx.size} test"),
    )
