"""Write docs/config-reference.md from the config's pydantic models (via their JSON Schema).

    python scripts/config_reference.py          # rewrite the file
    python scripts/config_reference.py --check  # exit 1 if the file is stale

tests/test_docs.py runs the check, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bpcli.config import (
    MAX_CONFIG_BYTES,
    MAX_COUNT,
    MAX_FILTERS,
    MAX_PROBLEMS,
    MAX_SEED,
    MAX_UNITS,
    MAX_WINDOW,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    Config,
)
from bpcli.memory import INFERENCE_ROWS

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "config-reference.md"

HEADER = f"""# Config reference

Every option of a bp config file, generated from the pydantic models in
the `bpcli/config/` package by `scripts/config_reference.py` (do not edit by hand). Unknown keys are
errors. `bp schema` prints the same information as a JSON Schema for editors.

A section or list item that says "one of" takes a `type` (layers) or `name` (optimizer,
loss, schedule, ...) that selects which table applies.

## Limits

Far beyond any useful config, these keep a mistaken or hostile file from exhausting
memory or time; each is refused with one line naming the place (exit 2).

- **The file** must be a regular file (a FIFO, device or directory is refused before it
  is opened) of at most {MAX_CONFIG_BYTES // 1024} KiB, nested at most {MAX_YAML_DEPTH} \
levels deep, holding at most
  {MAX_YAML_NODES:,} values once YAML aliases are expanded (so that a few lines of \
aliases cannot
  stand for billions of values); an alias may not refer to the node that contains it.
  At most {MAX_PROBLEMS} problems are listed; the rest are counted.
- **Numbers**: no setting takes `.inf` or `.nan`. Seeds are 0 to {MAX_SEED:,}. The tables
  below give each number's range: at most {MAX_UNITS:,} dense units (and input \
dimensions),
  {MAX_FILTERS:,} filters, {MAX_WINDOW:,} for kernel, pool, stride and padding sizes, \
and {MAX_COUNT:,}
  for epochs, batch sizes and other counts.
- **Memory**: before it is built (by `bp validate` too), the network's memory is
  estimated: parameters, gradients and optimizer state, and each layer's activations
  for a batch of `training.batch_size` rows and for up to {INFERENCE_ROWS:,} rows in
  evaluation. A network that needs more than the memory available (Linux's
  `MemAvailable`) is refused at the layer that needs most.
"""


def describe_type(spec: dict[str, Any]) -> str:
    if "x-bp-type" in spec:  # a field of several forms, in the words its errors use
        return str(spec["x-bp-type"]).removeprefix("a ").removeprefix("an ")
    if "$ref" in spec:
        return f"[{spec['$ref'].split('/')[-1]}](#{anchor(spec['$ref'].split('/')[-1])})"
    if "enum" in spec:
        return "one of " + ", ".join(code(v) for v in spec["enum"])
    if "const" in spec:
        return code(spec["const"])
    if "anyOf" in spec or "oneOf" in spec:
        members = [describe_type(s) for s in spec.get("anyOf", spec.get("oneOf", []))]
        return " or ".join(dict.fromkeys(members))
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {describe_type(spec.get('items', {}))}"
    if kind == "object" and "additionalProperties" in spec:
        return f"mapping to {describe_type(spec['additionalProperties'])}"
    return {"integer": "integer", "number": "number", "string": "text", "boolean": "boolean",
            "null": "null"}.get(kind, kind)


def describe_range(spec: dict[str, Any]) -> str:
    if "x-bp-type" in spec:  # its words say the range too
        return ""
    parts = []
    for key, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                        ("exclusiveMaximum", "<")):
        if key in spec:
            parts.append(f"{symbol} {spec[key]}")
    for member in spec.get("anyOf", []):
        if member.get("type") != "null":
            parts.append(describe_range(member))
    if "minItems" in spec:
        parts.append(f"at least {spec['minItems']} item(s)")
    if "pattern" in spec:
        parts.append(f"matches `{spec['pattern']}`")
    return ", ".join(p for p in parts if p)


def code(value: Any) -> str:
    """A value as inline code, control characters escaped (a tab shows as ``\\t``)."""
    text = json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def cell(text: str) -> str:
    """Text for a table cell: a ``|`` would end the cell, even inside inline code."""
    return text.replace("|", "\\|")


def anchor(name: str) -> str:
    return name.lower()


def render() -> str:
    schema = Config.model_json_schema()
    models = {"Config": schema, **schema.get("$defs", {})}
    lines = [HEADER]
    for name, model in models.items():
        if "properties" not in model:
            continue
        lines.append(f"## {name}\n")
        if model.get("description"):
            lines.append(" ".join(model["description"].split()) + "\n")
        lines.append("| key | type | default | allowed | description |")
        lines.append("| --- | --- | --- | --- | --- |")
        required = set(model.get("required", []))
        for key, spec in model["properties"].items():
            if key in required:
                default = "required"
            elif "default" in spec:
                default = f"`{json.dumps(spec['default'])}`"
            else:
                default = "its defaults"
            description = " ".join(str(spec.get("description", "")).split())
            cells = [f"`{key}`", describe_type(spec), default, describe_range(spec),
                     description]
            lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python scripts/config_reference.py", file=sys.stderr)
            sys.exit(1)
        return
    OUTPUT.write_text(text)


if __name__ == "__main__":
    main()
