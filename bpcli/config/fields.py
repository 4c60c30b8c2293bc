"""The pieces every config section is made of: the strict base model, number limits, fields
of several forms, and named choices with settings (activations, initialisers)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from bpcli.config.names import did_you_mean
from bpcli.nn import ACTIVATIONS, INITIALIZERS, LOSSES
from bpcli.nn.init import PARAMETRIC_INITIALIZERS

Loc = tuple[str | int, ...]


def _one_of(allowed: list[str], what: str) -> AfterValidator:
    """The check of a string field whose allowed values are the keys of a name ->
    implementation table."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, allowed)}; "
                             f"allowed: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _enum(allowed: list[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": allowed})


_ACTIVATIONS = list(ACTIVATIONS)


_INITIALIZERS = ["auto", *INITIALIZERS, *PARAMETRIC_INITIALIZERS]


_LOSSES = list(LOSSES)


ActivationName = Annotated[str, _one_of(_ACTIVATIONS, "activation"), _enum(_ACTIVATIONS)]


InitName = Annotated[str, _one_of(_INITIALIZERS, "initialiser"), _enum(_INITIALIZERS)]


LossName = Annotated[str, _one_of(_LOSSES, "loss"), _enum(_LOSSES)]


class Strict(BaseModel):
    # inf and nan are no setting's meaningful value: refused here rather than crashing later
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class Either:
    """A field that takes one of several forms (``3`` or ``[3, 5]``) says so in one
    sentence when its value fits none of them, instead of one error per form; the config
    reference shows the same words (``x-bp-type`` in the JSON Schema)."""

    forms: str  # e.g. "a positive integer or [height, width]"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        def validate(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> Any:
            try:
                return inner(value)
            except ValidationError:
                raise PydanticCustomError("bp_either", "must be {forms}",
                                          {"forms": self.forms}) from None

        return core_schema.no_info_wrap_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["x-bp-type"] = self.forms
        return json_schema


# Upper limits of the numbers in a config, documented in docs/config-reference.md. They
# are far beyond useful values; they keep a typo (an extra 000) from reaching NumPy as an
# allocation or an overflow. What fits in memory is checked again once the data is known.
MAX_SEED = 2**32 - 1


MAX_COUNT = 10**9  # epochs, batch sizes, patience and other counts


MAX_UNITS = 1_000_000  # dense units, input dimensions


MAX_FILTERS = 65_536


MAX_WINDOW = 1024  # kernel, pool, stride and padding sizes


PositiveInt = Annotated[int, Field(ge=1)]


Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


Dimension = Annotated[int, Field(ge=1, le=MAX_UNITS)]


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


Window = Annotated[int, Field(ge=1, le=MAX_WINDOW)]


Pad = Annotated[int, Field(ge=0, le=MAX_WINDOW)]


Size = Annotated[Window | tuple[Window, Window],
                 Either(f"a positive integer or [height, width], each at most {MAX_WINDOW}")]


PaddingSpec = Annotated[Literal["valid", "same"] | Pad | tuple[Pad, Pad], Either(
    f"valid, same, a whole number >= 0 or [height, width], each at most {MAX_WINDOW}")]


FillValue = Annotated[float | str, Either("a number or text")]


def name_or_mapping(value: Any) -> Any:
    """Accept ``optimizer: adam`` as shorthand for ``optimizer: {name: adam}`` (likewise
    activations, initialisers, losses and schedules)."""
    return {"name": value} if isinstance(value, str) else value


class Named(Strict):
    """A choice by ``name`` with optional settings; written back as the bare name when no
    setting is given (``activation: relu`` rather than ``activation: {name: relu}``)."""

    name: str

    @model_serializer(mode="wrap")
    def _bare_name(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict) or "name" not in data:  # a partial dump (exclude=...)
            return data
        settings = {k: v for k, v in data.items() if k != "name" and v is not None}
        return data["name"] if not settings else {"name": data["name"], **settings}

    def __str__(self) -> str:
        options = self.options()
        details = ", ".join(f"{k}={v}" for k, v in options.items())
        return f"{self.name} ({details})" if options else str(self.name)

    def options(self) -> dict[str, Any]:
        """The settings that were given, by name."""
        return {k: getattr(self, k) for k in type(self).model_fields
                if k != "name" and getattr(self, k) is not None}


class ActivationConfig(Named):
    """An activation with options, e.g. ``{name: elu, alpha: 0.5}``."""

    name: ActivationName
    slope: float | None = Field(None, ge=0, description="leaky_relu: slope below 0 (0.01).")
    alpha: float | None = Field(None, gt=0, description="elu: the value it saturates to "
                                "below 0 is -alpha (1.0).")
    approximate: bool | None = Field(None, description="gelu: the tanh approximation "
                                     "instead of the exact erf form (false).")

    @model_validator(mode="after")
    def _options_fit_the_activation(self) -> ActivationConfig:
        accepted = inspect.signature(ACTIVATIONS[self.name].__init__).parameters
        for option in self.options():
            if option not in accepted:
                raise ValueError(f"{self.name} takes no option {option!r}"
                                 + (f"; it takes {', '.join(k for k in accepted if k != 'self')}"
                                    if len(accepted) > 1 else ""))
        return self


class InitConfig(Named):
    """An initialiser, by name; ``constant`` takes a ``value``: ``{name: constant, value: 0.1}``."""

    name: InitName
    value: float | None = Field(None, description="constant: every weight starts at this.")

    @model_validator(mode="after")
    def _value_only_for_constant(self) -> InitConfig:
        if self.name == "constant" and self.value is None:
            raise ValueError("constant needs a value, e.g. {name: constant, value: 0.1}")
        if self.name != "constant" and self.value is not None:
            raise ValueError(f"{self.name} takes no value; only constant does")
        return self


ActivationSpec = Annotated[ActivationConfig, BeforeValidator(name_or_mapping)]


InitSpec = Annotated[InitConfig, BeforeValidator(name_or_mapping)]
