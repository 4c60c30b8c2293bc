"""``bp inspect``: what a model or checkpoint file holds and where it came from: its
layers, activations and loss, its preprocessing, and the run that wrote it; for a GAN's
file, its noise, both networks and what it generates."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bpcli.atomic import json_text
from bpcli.data import Preprocessor
from bpcli.display import Display, layer_row
from bpcli.ganbuild import layout_of_meta
from bpcli.metrics import value_text
from bpcli.modelfile import SavedGan, SavedModel, load_any
from bpcli.nn import Network
from bpcli.rundir import RunFiles

UNKNOWN = "unknown"  # what a file does not record


def inspect(path: Path, display: Display, as_json: bool = False) -> None:
    """Show what ``path`` holds; with ``as_json``, print it as one JSON document."""
    saved = load_any(path)
    report = describe_gan(path, saved) if isinstance(saved, SavedGan) else describe(path, saved)
    if as_json:
        sys.stdout.write(json_text(report, indent=2) + "\n")
        sys.stdout.flush()
        return
    if isinstance(saved, SavedGan):
        show_gan(report, display)
    else:
        show(report, display)


def describe(path: Path, saved: SavedModel) -> dict[str, Any]:
    """Everything ``bp inspect`` shows, as plain JSON values under stable keys. Keys a file
    does not record are present with ``null``; non-finite numbers also become ``null``."""
    meta, network, pre = saved.meta, saved.network, saved.preprocessor
    checkpoint = "trainer" in meta
    layers = network.summary()  # numbered as the config numbers them
    activations = [{"layer": layer["index"], "name": layer["activation"]["name"],
                    "options": {k: v for k, v in layer["activation"].items() if k != "name"}}
                   for layer in layers if layer["activation"] is not None]
    regression = pre.task == "regression"
    return {
        "file": str(path),
        "kind": "checkpoint" if checkpoint else "model",
        "task": pre.task,
        "input_shape": list(network.input_shape),
        "output_shape": list(network.output_shape),
        "layers": layers,
        "parameters": network.n_params,
        "activations": activations,
        "loss": {"name": network.loss.name, "options": _dict(meta.get("loss_options"))},
        "preprocessing": {
            "features": [{"name": name, "mean": float(mean), "scale": float(scale),
                          "text": text}
                         for name, mean, scale, text in zip(pre.features, pre.mean, pre.scale,
                                                            _text_inputs(pre), strict=True)],
            "columns": [column.to_json() for column in pre.inputs],
            "classes": list(pre.classes),
            "targets": [{"name": name,
                         "mean": float(pre.target_mean[j]) if regression else None,
                         "scale": float(pre.target_scale[j]) if regression else None}
                        for j, name in enumerate(pre.targets)],
        },
        "training": _training(meta, pre.task, checkpoint),
        "origin": _origin(path, meta),
    }


def _origin(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Where a file came from: when, which bp and environment, which data and run."""
    run_dir = _run_dir(path)
    environment = _dict(meta.get("environment"))
    return {
        "created": _str(meta.get("created")),
        "bp_version": _str(environment.get("bp")),
        "environment": environment,
        "data_paths": _data_paths(meta.get("config")),
        "run_dir": str(run_dir) if run_dir is not None else None,
        "fingerprints": _fingerprints(run_dir),
    }


def describe_gan(path: Path, saved: SavedGan) -> dict[str, Any]:
    """What ``bp inspect`` shows of a GAN's file, as plain JSON values: its noise, both
    networks' layers, what it generates (the data's columns, or the images' shape), its
    settings, the epoch and its samples' last measured quality, and its origin."""
    meta, gan, pre = saved.meta, saved.gan, saved.preprocessor
    settings = _dict(meta.get("gan"))
    layout = layout_of_meta(settings)
    checkpoint = "trainer" in meta
    trainer = _dict(meta.get("trainer"))
    if layout.image_shape is not None:
        generates: dict[str, Any] = {"kind": "images", "image_shape": list(layout.image_shape),
                                     "columns": [{"name": name, "kind": "pixel"}
                                                 for name in pre.features]}
    else:
        columns = [{"name": c.name, "kind": c.kind,
                    "categories": list(c.categories) if c.kind == "categorical" else None}
                   for c in pre.inputs]
        if layout.target == "classes":
            columns.append({"name": pre.targets[0], "kind": "categorical",
                            "categories": list(pre.classes)})
        elif layout.target == "values":
            columns += [{"name": name, "kind": "numeric", "categories": None}
                        for name in pre.targets]
        generates = {"kind": "rows", "image_shape": None, "columns": columns}
    return {
        "file": str(path),
        "kind": "checkpoint" if checkpoint else "model",
        "model": "gan",
        "format_version": meta.get("format_version"),
        "noise": {"size": gan.noise_size, "distribution": gan.noise},
        "generator": _network(gan.generator),
        "discriminator": _network(gan.discriminator),
        "parameters": gan.generator.n_params + gan.discriminator.n_params,
        "generates": generates,
        "settings": {"d_steps": settings.get("d_steps"),
                     "label_smoothing": gan.label_smoothing},
        "training": {"epoch": trainer.get("epoch", meta.get("epoch")),
                     "batch": trainer.get("batch") if checkpoint else None,
                     "quality": {k: v for k, v in _dict(meta.get("metrics")).items()
                                 if k != "epoch"}},
        "origin": _origin(path, meta),
    }


def _network(network: Network) -> dict[str, Any]:
    return {"input_shape": list(network.input_shape),
            "output_shape": list(network.output_shape), "layers": network.summary(),
            "parameters": network.n_params}


#: how each noise distribution is drawn, for a person
NOISE_TEXT = {"normal": "standard normal", "uniform": "uniform on [-1, 1]"}


def show_gan(report: dict[str, Any], display: Display) -> None:
    """The report of ``describe_gan`` for a person."""
    kind = report["kind"]
    what = ("a GAN's checkpoint: both networks, their optimizers and the trainer's state"
            if kind == "checkpoint" else "a GAN's model: a generator and its discriminator")
    display.info(f"{report['file']}: {what}; draw rows with bp generate {report['file']}")
    noise = report["noise"]
    generates = report["generates"]
    if generates["kind"] == "images":
        shape = "x".join(map(str, generates["image_shape"]))
        made = f"images {shape} (channels x height x width; {len(generates['columns'])} pixels)"
    else:
        made = f"rows of {len(generates['columns'])} columns: " + ", ".join(
            f"{c['name']} ({c['kind']}"
            + (f": {', '.join(c['categories'])}" if c["categories"] else "") + ")"
            for c in generates["columns"])
    settings = report["settings"]
    display.details("GAN", [
        ("noise", f"{noise['size']} values, "
                  f"{NOISE_TEXT.get(noise['distribution'], noise['distribution'])}"),
        ("generates", made),
        ("parameters", f"{report['parameters']:,} (generator "
                       f"{report['generator']['parameters']:,}, discriminator "
                       f"{report['discriminator']['parameters']:,})"),
        ("training", f"{value_text(settings['d_steps'], UNKNOWN)} discriminator "
                     f"step{'' if settings['d_steps'] == 1 else 's'} per generator step, "
                     f"label smoothing {settings['label_smoothing']:g}"),
    ])
    for name in ("generator", "discriminator"):
        network = report[name]
        display.layer_table(tuple(network["input_shape"]),
                            [layer_row(e) for e in network["layers"]], title=name)
    training = report["training"]
    epoch = value_text(training["epoch"], UNKNOWN)
    rows = [("epoch", f"{epoch} completed" + (f", and {training['batch']} batches of the "
                                              "next" if training["batch"] else "")
             if kind == "checkpoint" else f"{epoch}, the last: these are its networks")]
    quality = training["quality"]
    if quality:
        rows.append(("quality", ", ".join(f"{k} {_figure(v)}" for k, v in quality.items())
                     + " (the last measured; docs/gan.md)"))
    display.details("training", rows)
    _show_origin(report["origin"], display)


def _figure(value: Any) -> str:
    """A quality figure: a count (classes present) as a whole number."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value_text(value, UNKNOWN)


def show(report: dict[str, Any], display: Display) -> None:
    """The report of ``describe`` for a person."""
    kind = report["kind"]
    what = ("a checkpoint: weights, optimizer and trainer state" if kind == "checkpoint"
            else "a model: the best epoch's weights and their preprocessing")
    display.info(f"{report['file']}: {what}")
    display.layer_table(tuple(report["input_shape"]), [layer_row(e) for e in report["layers"]])

    pre = report["preprocessing"]
    targets = pre["targets"]
    if report["task"] == "classification":
        task = (f"classification of '{targets[0]['name']}' into {len(pre['classes'])} "
                f"classes: {', '.join(pre['classes'])}")
    else:
        task = "regression of " + ", ".join(
            f"'{t['name']}' (scaled with mean {t['mean']:.6g}, scale {t['scale']:.6g})"
            for t in targets)
    activations = ", ".join(f"{_named(a['name'], a['options'])} at layer {a['layer']}"
                            for a in report["activations"]) or "none"
    loss = report["loss"]
    display.details("network", [
        ("task", task),
        ("parameters", f"{report['parameters']:,}"),
        ("activations", activations),
        ("loss", _named(loss["name"], loss["options"])),
    ])
    # a text column's inputs are not scaled (tfidf weights or word ids): its line says more
    display.feature_table([(f["name"], f["mean"], f["scale"]) for f in pre["features"]
                           if not f.get("text")])
    display.details("columns", [(c["name"], _column(c)) for c in pre["columns"]])

    training = report["training"]
    metrics = dict(training["metrics"])
    best_epoch = metrics.pop("best_epoch", None)
    scores = ", ".join(f"{k} {value_text(metrics[k], UNKNOWN)}"
                       for k in sorted(metrics, key=lambda k: k != "val_loss")) or "unknown"
    if kind == "checkpoint":
        epoch = f"{value_text(training['epoch'], UNKNOWN)} completed"
        if training["batch"]:
            epoch += f", and {training['batch']} batches of the next"
        rows_training = [("epoch", epoch),
                         ("best so far", f"epoch {value_text(best_epoch, UNKNOWN)}: {scores}")]
    else:
        rows_training = [("epoch", f"{value_text(training['epoch'], UNKNOWN)}, the best: "
                          "these are its weights"), ("scores", scores)]
    display.details("training", rows_training)
    _show_origin(report["origin"], display)


def _show_origin(origin: dict[str, Any], display: Display) -> None:
    environment = origin["environment"]
    software = ", ".join(f"{k} {environment[k]}" for k in ("numpy", "python")
                         if k in environment)
    rows_origin = [("created", value_text(origin["created"], UNKNOWN)),
                   ("bp", value_text(origin["bp_version"], UNKNOWN)),
                   ("environment", software or "unknown")]
    for key in ("platform", "blas", "blas_threads"):
        if key in environment:
            rows_origin.append((key.replace("_", " "), value_text(environment[key], UNKNOWN)))
    rows_origin += [("data", path) for path in origin["data_paths"]] or [("data", "unknown")]
    rows_origin.append(("run directory", value_text(origin["run_dir"], UNKNOWN)))
    fingerprints = origin["fingerprints"]
    if fingerprints is not None:
        config_digest = value_text(fingerprints.get("config"), UNKNOWN)
        rows_origin.append(("sha256", f"{config_digest}  {RunFiles.CONFIG}"))
        data = fingerprints.get("data")
        for name, digest in (data.items() if isinstance(data, dict) else []):
            rows_origin.append(("sha256", f"{value_text(digest, UNKNOWN)}  {name}"))
    display.details("origin", rows_origin)


def _training(meta: dict[str, Any], task: str, checkpoint: bool) -> dict[str, Any]:
    """The epoch and the best scores: ``metrics`` in a model file, the trainer's state in
    a checkpoint (whose scores carry no metric name: it follows from the task)."""
    epoch = meta.get("epoch")
    if not checkpoint:
        return {"epoch": epoch, "batch": None, "metrics": _dict(meta.get("metrics"))}
    trainer = _dict(meta.get("trainer"))
    metric = "val_accuracy" if task == "classification" else "val_rmse"
    return {"epoch": trainer.get("epoch", epoch), "batch": trainer.get("batch"),
            "metrics": {"best_epoch": trainer.get("best_epoch"),
                        "val_loss": trainer.get("best_val_loss"),
                        metric: trainer.get("best_val_metric")}}


def _text_inputs(pre: Preprocessor) -> list[bool]:
    """Which network inputs come from text columns."""
    return [column.text is not None for column in pre.inputs for _ in range(column.width)]


#: bp inspect: the words shown of a text column's vocabulary
TOKENS_SHOWN = 8


def _text_column(column: dict[str, Any]) -> str:
    text = column["text"]
    vocabulary = text["vocabulary"]
    if text["encoding"] == "sequence":
        common = vocabulary[:TOKENS_SHOWN]  # most frequent first
        how = (f"text as a sequence of {text['max_length']} word ids; vocabulary "
               f"{len(vocabulary):,} words (+ padding and unknown)")
    else:
        order = sorted(range(len(vocabulary)), key=lambda i: text["idf"][i])
        common = [vocabulary[i] for i in order[:TOKENS_SHOWN]]  # lowest idf: most common
        grams = f", word n-grams {text['ngrams']}" if text["ngrams"] != [1, 1] else ""
        chars = f", character n-grams {text['char_ngrams']}" if text.get("char_ngrams") \
            else ""
        how = f"text as tfidf of {len(vocabulary):,} tokens{grams}{chars}"
    shown = ", ".join(repr(t) for t in common)
    return (f"{how}; most common: {shown}; "
            f"{'lower-cased, ' if text['lowercase'] else ''}tokens {text['token_pattern']!r}; "
            "missing cells: empty text")


def _column(column: dict[str, Any]) -> str:
    """How an input column is read and filled, in a line."""
    if column["kind"] == "text":
        return _text_column(column)
    text = f"{column['kind']}; missing cells: "
    if column["missing"] == "error":
        text += "refused"
    else:
        fill = column["fill"]
        text += (f"filled with {fill:.6g}" if isinstance(fill, float) else
                 f"filled with {fill!r}") + f" ({column['missing']})"
    if column["kind"] == "categorical":
        text += (f"; {len(column['categories'])} categories"
                 f"{' and <other>' if column.get('other') else ''}; unseen values: "
                 f"{column['unseen']}{'; case folded' if column.get('fold_case') else ''}")
    if column.get("na_values"):
        text += f"; also missing: {', '.join(column['na_values'])}"
    return text


def _run_dir(path: Path) -> Path | None:
    """The run directory the file sits in (``model.npz`` at its top, checkpoints one
    level down), if it sits in one: a directory with the files only bp train writes (a
    config.yaml alone could be anyone's)."""
    parent = path.parent
    if parent.name == RunFiles.CHECKPOINTS:
        parent = parent.parent
    is_run = RunFiles(parent).fingerprints.is_file() or RunFiles(parent).summary.is_file()
    return parent if is_run else None


def _fingerprints(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    try:
        recorded = json.loads(RunFiles(run_dir).fingerprints.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _data_paths(config: Any) -> list[str]:
    data = _dict(_dict(config).get("data"))
    return [str(data[key]) for key in ("path", "validation_path") if data.get(key)]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _named(name: Any, options: dict[str, Any]) -> str:
    """``huber (delta=1.0)``: a name with the options that are set."""
    detail = ", ".join(f"{k}={v}" for k, v in options.items() if v is not None)
    return f"{name} ({detail})" if detail else str(name)
