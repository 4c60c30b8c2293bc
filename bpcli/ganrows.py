"""The rows a GAN learns and makes: the network inputs the preprocessing encodes (numbers
scaled, categories one-hot, pixels), and for tabular data the target after them (one-hot
classes, or the scaled values); and generated rows decoded back into the CSV's columns
and units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bpcli.data import OTHER, Preprocessor

#: column kinds a GAN can make
GAN_KINDS = ("numeric", "boolean", "categorical")


@dataclass(frozen=True)
class GanLayout:
    """Where each column sits in a GAN's rows.

    Images (``image_shape`` set) are their pixels alone; tabular rows are the features,
    then the target: class probabilities (``target == "classes"``) or scaled values
    (``"values"``). ``groups`` are the one-hot blocks, ``[start, stop)``, over which the
    generator ends in a softmax.
    """

    n_features: int
    target: str  # "none" | "classes" | "values"
    n_target: int
    groups: tuple[tuple[int, int], ...]
    image_shape: tuple[int, ...] | None = None

    @classmethod
    def of(cls, pre: Preprocessor, image_shape: tuple[int, ...] | None) -> GanLayout:
        """The layout of the data ``pre`` encodes; ``ValueError`` names a column a GAN
        cannot make."""
        for column in pre.inputs:
            if column.kind not in GAN_KINDS:
                raise ValueError(f"column {column.name!r} is {column.kind}; a GAN makes "
                                 f"{', '.join(GAN_KINDS)} columns: drop it (data.drop)")
        n_features = len(pre.features)
        if image_shape is not None:
            return cls(n_features, "none", 0, (), tuple(image_shape))
        groups = []
        start = 0
        for column in pre.inputs:
            if column.kind == "categorical":
                groups.append((start, start + column.width))
            start += column.width
        if pre.task == "classification":
            groups.append((n_features, n_features + len(pre.classes)))
            return cls(n_features, "classes", len(pre.classes), tuple(groups))
        return cls(n_features, "values", len(pre.targets), tuple(groups))

    @property
    def width(self) -> int:
        return self.n_features + self.n_target

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one row as the networks see it."""
        return self.image_shape if self.image_shape is not None else (self.width,)

    def rows(self, X: NDArray, Y: NDArray) -> NDArray:
        """Training rows from encoded features ``X`` (n, F) and targets ``Y`` (class
        indices (n,), or scaled values (n, T)); images are ``X`` alone."""
        if self.target == "none":
            return X
        if self.target == "classes":
            target = np.zeros((len(X), self.n_target), dtype=X.dtype)
            target[np.arange(len(X)), Y.astype(np.intp).reshape(-1)] = 1.0
        else:
            target = Y.reshape(len(X), -1).astype(X.dtype)
        return np.concatenate([X, target], axis=1)

    def decode(self, rows: NDArray, pre: Preprocessor, rng: np.random.Generator
               ) -> tuple[list[str], list[list[str]]]:
        """Generated rows (n, width) as CSV: the header and the cells, numbers in their
        own units, a category drawn from each one-hot block's probabilities with
        ``rng``. Images give one column per pixel, in the data's pixel units."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        raw = rows[:, : self.n_features] * pre.scale + pre.mean
        header: list[str] = []
        columns: list[list[str]] = []
        if self.image_shape is not None:
            return pre.features, [[_number(v) for v in row] for row in raw]
        j = 0
        for column in pre.inputs:
            header.append(column.name)
            if column.kind == "categorical":
                labels = [*column.categories, *[OTHER] * column.other]
                picks = draw(rows[:, j : j + column.width], rng)
                columns.append([labels[k] for k in picks])
            elif column.kind == "boolean":
                columns.append(["1" if v >= 0.5 else "0" for v in raw[:, j]])
            else:
                columns.append([_number(v) for v in raw[:, j]])
            j += column.width
        targets = rows[:, self.n_features :]
        if self.target == "classes":
            header.append(pre.targets[0])
            columns.append([pre.classes[k] for k in draw(targets, rng)])
        elif self.target == "values":
            values = pre.inverse_target(targets)
            for t, name in enumerate(pre.targets):
                header.append(name)
                columns.append([_number(v) for v in values[:, t]])
        return header, [list(cells) for cells in zip(*columns, strict=True)]


def draw(probabilities: NDArray, rng: np.random.Generator) -> NDArray[np.intp]:
    """One category per row, drawn with the row's probabilities (the generator's softmax):
    drawing keeps the categories' shares, where the most likely one would exaggerate the
    common ones."""
    p = np.clip(probabilities, 0.0, None)
    p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    u = rng.random((len(p), 1))
    return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)


def _number(value: float) -> str:
    return f"{value:.6g}"
