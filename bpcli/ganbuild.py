"""A GAN from a config and its data: the rows it learns, its two networks (resolved and
checked against the data's shape, errors pointing into the config), their optimizers,
and the step the training loop runs per batch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.building import LayerError, network_of, output_shape
from bpcli.config import Config, DenseConfig, GanConfig, GanNetworkConfig, LoadedConfig
from bpcli.data import Preprocessor
from bpcli.experiment import Experiment, with_defaults
from bpcli.ganquality import QualityProbe, RealRows
from bpcli.ganrows import GanLayout
from bpcli.memory import INFERENCE_ROWS
from bpcli.nn import OPTIMIZERS, Gan, GanStep, GroupSoftmax, Layer, NoLoss, OptimizerPair
from bpcli.nn.losses import SigmoidBinaryCrossEntropy
from bpcli.trainer import BatchStep, StepResult

#: the names of a GAN step's figures: the live table's columns and metrics' keys
D_LOSS, G_LOSS, D_REAL, D_FAKE = "D loss", "G loss", "D(real)", "D(fake)"


@dataclass
class GanParts:
    """A GAN ready to train: the networks, their optimizers, and the rows' layout."""

    gan: Gan
    optimizers: OptimizerPair
    layout: GanLayout
    #: measures the samples at epochs' ends (None: never, quality_every 0)
    quality: QualityProbe | None = None

    def meta(self, config: GanConfig) -> dict[str, Any]:
        """What a model file records of the GAN besides its networks."""
        layout = self.layout
        return {"noise_size": config.noise_size, "noise": config.noise,
                "label_smoothing": config.label_smoothing, "d_steps": config.d_steps,
                "layout": {"n_features": layout.n_features, "target": layout.target,
                           "n_target": layout.n_target,
                           "groups": [list(g) for g in layout.groups],
                           "image_shape": (list(layout.image_shape)
                                           if layout.image_shape is not None else None)}}


def layout_of_meta(settings: dict[str, Any]) -> GanLayout:
    """The layout a GAN's model file records (``meta["gan"]["layout"]``)."""
    layout = settings["layout"]
    image = layout["image_shape"]
    return GanLayout(int(layout["n_features"]), str(layout["target"]),
                     int(layout["n_target"]), tuple((int(a), int(b)) for a, b in
                                                    layout["groups"]),
                     tuple(int(n) for n in image) if image is not None else None)


def prepare_gan(experiment: Experiment) -> tuple[Experiment, GanLayout, RealRows]:
    """The experiment of a GAN config: its training rows laid out for the GAN (features,
    then the target for tabular data), no validation rows for the training loop (a GAN's
    losses say nothing of its samples' quality; the last epoch is the model), and the
    config with both networks' inferred settings filled in; and the real rows, training
    and validation, that its samples' quality is measured against."""
    loaded = experiment.loaded
    pre = experiment.preprocessor
    image = experiment.config.data.input_shape
    try:
        layout = GanLayout.of(pre, tuple(image) if image is not None else None)
    except ValueError as exc:
        raise loaded.error(("data",), str(exc)) from None
    config = experiment.config
    assert config.gan is not None
    resolved = config.model_copy(update={"gan": _resolve(config.gan, layout)})
    X = layout.rows(experiment.X_train, experiment.Y_train)
    real = RealRows(X, layout.rows(experiment.X_val, experiment.Y_val))
    if layout.image_shape is not None and pre.task == "classification":
        # images are measured by a classifier of their labels, which the GAN does not make
        real.train_labels, real.val_labels = experiment.Y_train, experiment.Y_val
        real.n_classes = len(pre.classes)
    no_rows = np.zeros((0, X.shape[1]), dtype=X.dtype)
    nothing = np.zeros((len(X), 0), dtype=X.dtype)
    # prepare's notes speak of a classifier's task and inputs; a GAN makes whole rows
    notes = [n for n in experiment.notes if not n.startswith(("task: ", "data: "))]
    notes.append(_data_note(layout, pre, len(X), len(real.val)))
    return dataclasses.replace(
        experiment, config=resolved, X_train=X, Y_train=nothing, X_val=no_rows,
        Y_val=nothing[:0], X_test=None, Y_test=None, metric_name="metric",
        notes=notes), layout, real


def _data_note(layout: GanLayout, pre: Preprocessor, n_train: int, n_val: int) -> str:
    """``data: 120 training rows, 30 validation rows to measure samples on; rows of 5
    columns (7 values)``."""
    measured = (f"{n_val} validation rows to measure samples on" if n_val
                else "no validation rows (samples are measured on the training rows)")
    if layout.image_shape is not None:
        made = "images of " + "x".join(str(n) for n in layout.image_shape)
    else:
        n_columns = len(pre.inputs) + len(pre.targets)
        made = f"rows of {n_columns} columns ({layout.width} values)"
    return f"data: {n_train} training rows, {measured}; the generator makes {made}"


def quality_probe(parts: GanParts, experiment: Experiment, real: RealRows
                  ) -> QualityProbe | None:
    """What measures the GAN's samples while it trains, as its config says (None: never).
    """
    config = experiment.config
    assert config.gan is not None
    every = config.gan.quality_interval(config.training.epochs)
    if every == 0:
        return None
    return QualityProbe(parts.gan, parts.layout, experiment.preprocessor, real,
                        config.training.seed, every, config.training.epochs,
                        config.gan.quality_samples)


def _resolve(gan: GanConfig, layout: GanLayout) -> GanConfig:
    """Hidden layers relu unless given; the generator's last dense layer as wide as a
    row (when its units are omitted) and identity unless given; the discriminator's
    last one sigmoid unit."""
    def network(spec: GanNetworkConfig, last_units: int | None, last_activation: str
                ) -> GanNetworkConfig:
        last = len(spec.layers) - 1
        layers = [with_defaults(layer, last_activation if i == last else "relu",
                                last_units if i == last and isinstance(layer, DenseConfig)
                                and layer.units is None else None)
                  for i, layer in enumerate(spec.layers)]
        return spec.model_copy(update={"layers": layers})

    width = layout.width if layout.image_shape is None else None
    return gan.model_copy(update={
        "generator": network(gan.generator, width, "identity"),
        "discriminator": network(gan.discriminator, 1, "sigmoid")})


def build_gan(loaded: LoadedConfig, config: Config, layout: GanLayout,
              rng: np.random.Generator, dtype: Any = np.float32, rows: int = 1) -> GanParts:
    """Both networks of a resolved GAN config, initialised from ``rng`` (then the GAN's
    random generator for noise and dropout), with their optimizers; refused with an
    error at the config's layer when a layer does not fit or the generator's rows are
    not shaped like the data's."""
    gan = config.gan
    assert gan is not None
    batch = min(config.training.batch_size, max(rows, 1))
    inference = min(INFERENCE_ROWS, max(rows, 1))
    extra: list[Layer] = [GroupSoftmax([list(g) for g in layout.groups])] if layout.groups else []
    where = ("gan", "generator", "layers")
    try:
        made = output_shape(gan.generator.layers, (gan.noise_size,))
    except LayerError as exc:
        raise loaded.error((*where, exc.index), str(exc)) from None
    if made != layout.shape:
        last = len(gan.generator.layers) - 1
        hint = (f"; end it with {{type: reshape, shape: {list(layout.shape)}}}"
                if len(made) == 1 and len(layout.shape) > 1
                and int(np.prod(layout.shape)) == made[0] else "")
        raise loaded.error((*where, last), f"the generator makes rows of shape "
                           f"{_shape(made)}; the data's are {_shape(layout.shape)}{hint}")
    try:
        G = network_of(gan.generator.layers, (gan.noise_size,), NoLoss(), rng, dtype,
                       batch, inference, config.training.batch_size, extra)
    except LayerError as exc:
        raise loaded.error((*where, exc.index), str(exc)) from None
    try:
        # the discriminator sees real and generated rows together: twice the batch
        D = network_of(gan.discriminator.layers, layout.shape, SigmoidBinaryCrossEntropy(),
                       rng, dtype, 2 * batch, inference, config.training.batch_size)
    except LayerError as exc:
        raise loaded.error(("gan", "discriminator", "layers", exc.index), str(exc)) from None
    optimizers = OptimizerPair(_optimizer(loaded, gan.generator, "generator"),
                               _optimizer(loaded, gan.discriminator, "discriminator"))
    return GanParts(Gan(G, D, gan.noise_size, gan.noise, gan.label_smoothing), optimizers,
                    layout)


def _optimizer(loaded: LoadedConfig, spec: GanNetworkConfig, name: str) -> Any:
    options = spec.optimizer.model_dump()
    try:
        return OPTIMIZERS[options.pop("name")](**options)
    except ValueError as exc:
        raise loaded.error(("gan", name, "optimizer"), str(exc)) from None


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def gan_step(parts: GanParts, d_steps: int) -> BatchStep:
    """The training loop's step for a GAN: ``GanStep`` on each batch of real rows, its
    figures reported for the live table (the batch's loss is the discriminator's)."""
    step = GanStep(parts.gan, parts.optimizers, d_steps)

    def run(X: NDArray, Y: NDArray, b: int) -> StepResult:
        stats, squared, failed = step(X, b)
        g_loss = stats.g_loss if stats.g_loss is not None else math.nan  # no G step
        figures = {D_LOSS: stats.d_loss, G_LOSS: g_loss, D_REAL: stats.d_real,
                   D_FAKE: stats.d_fake}
        if failed is not None:
            loss = stats.g_loss if failed == "generator" else stats.d_loss
            return StepResult(stats.d_loss, squared, f"the {failed}'s loss or gradients are "
                              f"not finite (loss {loss})", figures)
        return StepResult(stats.d_loss, squared, None, figures)

    return run
