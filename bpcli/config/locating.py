"""From pydantic's errors to located one-line messages: where a field sits in the YAML
file, and what to say about it."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from bpcli.config.fields import Loc
from bpcli.config.names import did_you_mean
from bpcli.config.schema import Config
from bpcli.errors import MAX_LISTED

MAX_PROBLEMS = MAX_LISTED


TYPO_SEARCH_LIMIT = 100


def one_per_typo(errors: list[Any], data: Any, schema: Any = Config) -> list[Any]:
    """A misspelt key (``targt``) makes two errors, the unknown key and the missing one it
    was meant to be; keep the first, which says both (``did you mean 'target'?``)."""
    meant = set()
    for err in errors[:TYPO_SEARCH_LIMIT]:  # past that many, they are not typos
        if err["type"] == "extra_forbidden":
            loc = _strip_tags(tuple(err["loc"]), data)
            close = difflib.get_close_matches(str(loc[-1]),
                                              _allowed_keys(loc[:-1], data, schema),
                                              n=1, cutoff=0.6)
            meant |= {(*loc[:-1], key) for key in close}
    return [err for err in errors if not (
        err["type"] == "missing" and _strip_tags(tuple(err["loc"]), data) in meant)]


def describe_error(root: yaml.Node, data: Any, err: Mapping[str, Any], schema: Any = Config
                   ) -> tuple[int, int, str]:
    """Turn one pydantic error into ``(line, column, "field.path: message")``; ``schema``
    is the model the file is validated against (a config, or a sweep)."""
    loc = _strip_tags(tuple(err["loc"]), data)
    line, col = locate(root, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1], data, schema)
        hint = did_you_mean(key, allowed)
        message = f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"
    elif kind == "missing":
        message = "required key is missing"
        line, col = locate(root, loc[:-1])
    elif kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        message = (f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} {tag!r}"
                   f"{did_you_mean(tag, tags)}; allowed: {', '.join(tags)}")
        loc = (*loc, str(ctx.get("discriminator", "type")).strip("'"))
        line, col = locate(root, loc)
    elif kind == "string_pattern_mismatch":
        message = (f"use letters, digits, '.', '_' and '-' only, starting with a letter or "
                   f"digit (got {err.get('input')!r})")
    elif kind == "union_tag_not_found":
        key = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
        message = f"missing {key!r}; say which kind this is"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        if kind != "value_error" and (isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and len(repr(value)) <= 40)):
            message += f" (got {value!r})"
    return line, col, f"{dotted(loc) or '(top level)'}: {message}"


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Drop the discriminator tags pydantic puts in error locations of tagged unions."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and isinstance(part, str) and (
            node.get("type") == part or node.get("name") == part
        ):
            continue
        out.append(part)
        node = _child(node, part)
    return tuple(out)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _allowed_keys(loc: Loc, data: Any, schema: Any = Config) -> list[str]:
    """Field names of the model found at ``loc`` (walking from ``schema``)."""
    annotation: Any = schema
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            annotation = _list_item(annotation)
        else:
            model = _model_in(annotation, node)
            if model is None or part not in model.model_fields:
                return []
            annotation = model.model_fields[part].annotation
        node = _child(node, part)
    if isinstance(node, str):  # a shorthand like `optimizer: adam`
        node = {"name": node}
    model = _model_in(annotation, node)
    return list(model.model_fields) if model is not None else []


def _list_item(annotation: Any) -> Any:
    """``X`` from ``list[X]``, looking through Annotated and Optional."""
    origin = get_origin(annotation)
    if origin is list:
        return get_args(annotation)[0]
    if origin is Annotated:
        return _list_item(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        for member in get_args(annotation):
            if get_origin(member) is list:
                return get_args(member)[0]
    return None


def _model_in(annotation: Any, node: Any) -> Any:
    """The pydantic model inside an annotation, choosing a union member by its tag."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _model_in(get_args(annotation)[0], node)
    if origin is Union or origin is types.UnionType:
        members = [m for m in map(_bare, get_args(annotation))
                   if isinstance(m, type) and issubclass(m, BaseModel)]
        for member in members:
            for tag_field in ("type", "name"):
                field = member.model_fields.get(tag_field)
                if (field is not None and isinstance(node, dict)
                        and node.get(tag_field) in get_args(field.annotation)):
                    return member
        return members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _bare(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` (``activation: ActivationSpec | None``)."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def duplicate_keys(node: yaml.Node) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    mark = key.start_mark
                    found.append((mark.line + 1, mark.column + 1,
                                  f"duplicate key {key.value!r}; keep one of them"))
                seen.add(key.value)
            found += duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += duplicate_keys(item)
    return found


def locate(root: yaml.Node, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the deepest node along ``loc`` that exists in the file.

    For a mapping key, points at the key itself (where a reader looks for it).
    """
    node = root
    mark = root.start_mark
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    mark, node = key.start_mark, value
                    break
            else:
                break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def dotted(loc: Loc) -> str:
    """``("model", "layers", 2, "units")`` -> ``model.layers[2].units``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
