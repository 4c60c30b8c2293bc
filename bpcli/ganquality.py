"""How good a GAN's samples are, measured against real rows: the distances between their
columns' distributions, their correlations, and what a small bp classifier makes of them.
Training measures its samples with these every few epochs (``QualityProbe``); the
fidelity table a tabular run ends with and ``benchmarks/gan_quality.py`` use the same
functions.

Tabular rows: the two-sample Kolmogorov-Smirnov statistic per numeric column, the total
variation distance per categorical column, the largest gap between the numeric columns'
correlation matrices, and train-on-synthetic/test-on-real (TSTR): a classifier of the
data's target trained on generated rows, tested on real ones, over the same trained on
the real training rows. Images: a classifier trained on the real training images' labels
scores generated ones: the share it labels with confidence >= 0.9, and how many classes
those cover (a collapsed generator draws few).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bpcli.data import Preprocessor
from bpcli.ganrows import GanLayout, draw
from bpcli.nn import Activation, Dense, Gan, Network
from bpcli.nn.losses import SoftmaxCrossEntropy
from bpcli.nn.optimizers import Adam

#: metrics.csv's quality columns (and the live table's)
KS_MAX, TV_MAX, CORR_GAP, TSTR = "KS max", "TV max", "corr gap", "TSTR"
CONFIDENT, CLASSES = "confident", "classes"
#: the top probability above which a generated image counts as clearly one class
CONFIDENCE = 0.9
#: the quality classifier: one hidden layer, trained this many batches of this size
CLASSIFIER_UNITS, CLASSIFIER_STEPS, CLASSIFIER_BATCH = 32, 300, 32
CLASSIFIER_LEARNING_RATE = 0.01
#: the key of the quality measurements' random streams among the run seed's children
#: (0 and 1 initialise the networks and shuffle the rows)
QUALITY_STREAM = 2


def ks_statistic(a: NDArray, b: NDArray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of samples ``a`` and ``b``: the largest
    gap between their empirical distribution functions."""
    points = np.concatenate([a, b])
    fa = np.searchsorted(np.sort(a), points, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), points, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def total_variation(p: NDArray, q: NDArray) -> float:
    """The total variation distance between two distributions over the same categories
    (shares summing to 1): half the sum of the absolute differences."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def correlations(X: NDArray) -> NDArray[np.float64]:
    """The Pearson correlation matrix of the columns of ``X`` (n, k); a constant column
    correlates 0 with every column, itself included (it carries no linear relation)."""
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    scaled = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    return scaled.T @ scaled


def correlation_gap(real: NDArray, fake: NDArray) -> float:
    """The largest absolute difference between the correlation matrices of two samples
    of the same numeric columns, in [0, 2]."""
    return float(np.abs(correlations(real) - correlations(fake)).max())


def confident_classes(probabilities: NDArray) -> tuple[float, int]:
    """Of rows of class probabilities (n, k): the share whose top probability is at least
    ``CONFIDENCE``, and how many classes those confident rows are labelled with."""
    top = probabilities.max(axis=1)
    confident = top >= CONFIDENCE
    labels = probabilities.argmax(axis=1)[confident]
    return float(confident.mean()), len(np.unique(labels))


@dataclass(frozen=True)
class Span:
    """A column of the data as it sits in a GAN's rows: ``[start, stop)``, one-hot when
    categorical."""

    name: str
    start: int
    stop: int
    categorical: bool


def spans(layout: GanLayout, pre: Preprocessor) -> list[Span]:
    """The data's columns (inputs, then the target) in a tabular GAN's rows."""
    found: list[Span] = []
    j = 0
    for column in pre.inputs:
        found.append(Span(column.name, j, j + column.width, column.kind == "categorical"))
        j += column.width
    if layout.target == "classes":
        found.append(Span(pre.targets[0], j, j + layout.n_target, True))
    elif layout.target == "values":
        found += [Span(name, j + t, j + t + 1, False) for t, name in enumerate(pre.targets)]
    return found


def fidelity(layout: GanLayout, pre: Preprocessor, real: NDArray, generated: NDArray,
             rng: np.random.Generator) -> dict[str, tuple[str, float]]:
    """How far generated rows are from real ones, column by column (both as the GAN's
    rows): for a number the two-sample Kolmogorov-Smirnov statistic (scaling does not
    change it), for a category the total variation distance between the shares of its
    values (generated values drawn from the softmax). Name -> (measure, distance), each
    in [0, 1]."""
    found: dict[str, tuple[str, float]] = {}
    for span in spans(layout, pre):
        if span.categorical:
            k = span.stop - span.start
            p = np.bincount(real[:, span.start:span.stop].argmax(axis=1), minlength=k)
            q = np.bincount(draw(generated[:, span.start:span.stop], rng), minlength=k)
            found[span.name] = ("total variation",
                                total_variation(p / len(real), q / len(generated)))
        else:
            found[span.name] = ("KS", ks_statistic(real[:, span.start],
                                                   generated[:, span.start]))
    return found


def train_classifier(X: NDArray, y: NDArray, n_classes: int, rng: np.random.Generator
                     ) -> Network:
    """A small classifier (one hidden relu layer, softmax) trained by bp's core on rows
    ``X`` (n, F) with class indices ``y``: ``CLASSIFIER_STEPS`` batches drawn from
    ``rng``, which also initialises it."""
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    network = Network([Dense(CLASSIFIER_UNITS, init="he_uniform"), Activation("relu"),
                       Dense(n_classes), Activation("softmax")],
                      SoftmaxCrossEntropy(), (X.shape[1],), rng, np.float32)
    optimizer = Adam(learning_rate=CLASSIFIER_LEARNING_RATE)
    labels = np.asarray(y, dtype=np.intp)
    order = rng.permutation(len(X))
    at = 0
    for _ in range(CLASSIFIER_STEPS):
        if at + CLASSIFIER_BATCH > len(X):
            order, at = rng.permutation(len(X)), 0
        index = order[at : at + CLASSIFIER_BATCH]
        at += CLASSIFIER_BATCH
        network.compute_gradients(X[index], labels[index])
        optimizer.step([network.flat_params], [network.flat_grads])
    return network


def accuracy(network: Network, X: NDArray, y: NDArray) -> float:
    """The share of rows ``X`` the classifier labels ``y``."""
    outputs = network.forward(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
    return float(np.mean(outputs.argmax(axis=1) == np.asarray(y).reshape(-1)))


@dataclass
class RealRows:
    """The real rows a GAN's samples are measured against, as the GAN's rows: the
    training rows and the validation rows (none when every row trains), with their class
    labels for image data whose target is a class (``None`` otherwise)."""

    train: NDArray
    val: NDArray
    train_labels: NDArray | None = None
    val_labels: NDArray | None = None
    n_classes: int = 0


@dataclass
class QualityProbe:
    """Measures a GAN's samples at the end of every ``every``-th epoch and of the last,
    against the validation rows (the training rows when there are none): the figures
    ``names`` lists, NaN on the epochs between. Its randomness (the samples' noise, the
    classifiers' weights and batches) comes from the run seed's own stream and the
    epoch's number, so that measuring takes nothing from training's random generators:
    the same run measures the same, resumed or not."""

    gan: Gan
    layout: GanLayout
    pre: Preprocessor
    real: RealRows
    seed: int
    every: int
    epochs: int
    samples: int
    names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how it measures, for the screen
    last: dict[str, float] = field(default_factory=dict)  # the last measurement
    classifier: Network | None = None  # images: scores generated images
    on_real: float = math.nan  # tabular: accuracy of the classifier trained on real rows

    def __post_init__(self) -> None:
        real, reference = self.real, self.reference
        against = ("the validation rows" if len(real.val) else
                   "the training rows (no validation rows: set data.validation_fraction "
                   "to measure on held-out rows)")
        if self.layout.image_shape is not None:
            if real.train_labels is None:
                self.notes.append("no quality measure for these images: a classifier "
                                  "learns their target's classes, and it has none")
                return
            self.classifier = train_classifier(real.train, real.train_labels,
                                               real.n_classes, self.rng(0))
            self.names = [CONFIDENT, CLASSES]
            held = ""
            if len(real.val) and real.val_labels is not None:
                held = (f", accuracy {accuracy(self.classifier, real.val, real.val_labels):.3f}"
                        f" on the {len(real.val)} validation images")
            self.notes.append(f"quality: a classifier trained on the {len(real.train)} "
                              f"training images' labels{held} scores {self.samples} "
                              f"generated ones: share with confidence >= {CONFIDENCE}, "
                              "and how many classes those cover")
            return
        kinds = {s.categorical for s in spans(self.layout, self.pre)}
        self.names = [name for name, present in
                      ((KS_MAX, False in kinds), (TV_MAX, True in kinds),
                       (CORR_GAP, len(self._numeric()) >= 2),
                       (TSTR, self.layout.target == "classes")) if present]
        if self.layout.target == "classes":
            self.on_real = self._tstr_accuracy(real.train, self.rng(0))
            target = self.pre.targets[0]
            self.notes.append(f"quality: {self.samples} generated rows against {against}; "
                              f"TSTR: a classifier of {target!r} trained on them, over one "
                              f"trained on the real training rows (accuracy "
                              f"{self.on_real:.3f} on {len(reference)} rows)")
        else:
            self.notes.append(f"quality: {self.samples} generated rows against {against}")

    @property
    def reference(self) -> NDArray:
        return self.real.val if len(self.real.val) else self.real.train

    def rng(self, epoch: int) -> np.random.Generator:
        """The measurement's generator at ``epoch`` (0: before training)."""
        return np.random.default_rng(np.random.SeedSequence(
            self.seed, spawn_key=(QUALITY_STREAM, epoch)))

    def due(self, epoch: int) -> bool:
        return bool(self.names) and self.every > 0 and (epoch % self.every == 0
                                                        or epoch == self.epochs)

    def __call__(self, epoch: int) -> dict[str, float]:
        """The figures at the end of ``epoch``: every name, NaN when not measured."""
        if not self.due(epoch):
            return dict.fromkeys(self.names, math.nan)
        rng = self.rng(epoch)
        fake = np.asarray(self.gan.sample(self.samples, rng), dtype=np.float64)
        if self.classifier is not None:
            probabilities = self.classifier.forward(
                fake.reshape(len(fake), -1).astype(np.float32))
            share, classes = confident_classes(probabilities)
            found = {CONFIDENT: share, CLASSES: float(classes)}
        else:
            found = self._tabular(self._hardened(fake, rng), rng)
        self.last = found
        return found

    def _tabular(self, fake: NDArray, rng: np.random.Generator) -> dict[str, float]:
        real = self.reference
        distances = fidelity(self.layout, self.pre, real, fake, rng)
        ks = [d for measure, d in distances.values() if measure == "KS"]
        tv = [d for measure, d in distances.values() if measure != "KS"]
        found: dict[str, float] = {}
        if ks:
            found[KS_MAX] = max(ks)
        if tv:
            found[TV_MAX] = max(tv)
        numeric = self._numeric()
        if len(numeric) >= 2:
            found[CORR_GAP] = correlation_gap(real[:, numeric], fake[:, numeric])
        if self.layout.target == "classes":
            on_fake = self._tstr_accuracy(fake, rng)
            found[TSTR] = on_fake / self.on_real if self.on_real > 0 else math.nan
        return found

    def _numeric(self) -> list[int]:
        return [s.start for s in spans(self.layout, self.pre) if not s.categorical]

    def _tstr_accuracy(self, rows: NDArray, rng: np.random.Generator) -> float:
        """The accuracy on the reference rows of a classifier of the target trained on
        ``rows`` (their features, and their target's one-hot block)."""
        n = self.layout.n_features
        labels = rows[:, n:].argmax(axis=1)
        network = train_classifier(rows[:, :n], labels, self.layout.n_target, rng)
        reference = self.reference
        return accuracy(network, reference[:, :n], reference[:, n:].argmax(axis=1))

    def _hardened(self, rows: NDArray, rng: np.random.Generator) -> NDArray:
        """Generated rows with each one-hot block's probabilities replaced by a category
        drawn from them, as the real rows' blocks are one-hot."""
        rows = rows.copy()
        for a, b in self.layout.groups:
            picks = draw(rows[:, a:b], rng)
            rows[:, a:b] = 0.0
            rows[np.arange(len(rows)), a + picks] = 1.0
        return rows
