"""The ``gan`` section: a generative adversarial network, in place of ``model``.

A generator turns noise into rows shaped like the data; a discriminator, ending in one
sigmoid unit, tells them from real rows. Each is a list of layers like ``model.layers``
with its own optimizer (Adam with ``beta1: 0.5`` unless given, as DCGAN found steadier
than Adam's usual 0.9).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from bpcli.config.fields import MAX_COUNT, MAX_UNITS, Strict
from bpcli.config.model import LayerConfig
from bpcli.config.training import AdamConfig, OptimizerConfig

#: The optimizer a GAN network gets when it names none (Radford et al., 2016).
GAN_LEARNING_RATE = 0.0002
GAN_BETA1 = 0.5
_ADAM_FAMILY = ("adam", "adamw", "nadam")
#: Rows generated per quality measurement: enough for a share or a distance to within a
#: few hundredths, few enough to cost a small part of an epoch.
QUALITY_SAMPLES = 500


def _gan_adam(value: Any) -> Any:
    """An Adam-family optimizer with no ``beta1`` gets the GAN default 0.5 (and one with
    no learning rate 0.0002); other optimizers keep their own defaults."""
    spec = {"name": value} if isinstance(value, str) else value
    if isinstance(spec, dict) and spec.get("name") in _ADAM_FAMILY:
        spec = {"learning_rate": GAN_LEARNING_RATE, "beta1": GAN_BETA1, **spec}
    return spec


def _default_optimizer() -> AdamConfig:
    return AdamConfig(name="adam", learning_rate=GAN_LEARNING_RATE, beta1=GAN_BETA1)


class GanNetworkConfig(Strict):
    """One of a GAN's two networks: its layers, input to output, and its optimizer."""

    layers: list[LayerConfig] = Field(min_length=1, description="As model.layers.")
    optimizer: Annotated[OptimizerConfig, BeforeValidator(_gan_adam)] = Field(
        default_factory=_default_optimizer,
        description="Default: adam with learning_rate 0.0002 and beta1 0.5 (any adam "
        "given without them gets these two).")


class GanConfig(Strict):
    """A generative adversarial network trained on the data's rows (``bp generate``
    draws new ones)."""

    noise_size: int = Field(ge=1, le=MAX_UNITS, description="Width of the generator's "
                            "noise input.")
    noise: Literal["normal", "uniform"] = Field(
        "normal", description="normal: standard normal; uniform: on [-1, 1].")
    generator: GanNetworkConfig = Field(description="Noise to rows shaped like the data: "
                                        "the last layer's units (dense) may be omitted; "
                                        "a softmax is added over each categorical column.")
    discriminator: GanNetworkConfig = Field(description="Rows to one sigmoid unit: the last "
                                            "layer is dense with 1 unit (may be omitted).")
    d_steps: int = Field(1, ge=1, le=100, description="Discriminator steps (batches) per "
                         "generator step.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="One-sided: the "
                                   "discriminator's target for real rows is 1 - this.")
    quality_every: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Measure the samples' quality against the "
        "validation rows every this many epochs and at the last (metrics.csv's quality "
        "columns; docs/gan.md). Default: every tenth of training.epochs; 0: never.")
    quality_samples: int = Field(QUALITY_SAMPLES, ge=10, le=100_000, description="Rows "
                                 "generated for each quality measurement.")

    def quality_interval(self, epochs: int) -> int:
        """Every how many epochs quality is measured (0: never)."""
        if self.quality_every is not None:
            return self.quality_every
        return max(epochs // 10, 1)
