"""``bp export``: a trained model in a format other runtimes read (ONNX)."""

from __future__ import annotations

from pathlib import Path

from bpcli.errors import UsageError


def export(model_path: Path, onnx_path: Path | None) -> str:
    """Export ``model_path`` to the file(s) asked for; what was written, in one line."""
    if onnx_path is None:
        raise UsageError("say what to export to: bp export MODEL.npz --onnx OUT.onnx")
    # imported here: the module imports nothing of onnx until asked, but bp export is its
    # only user
    from bpcli.onnxexport import export_onnx

    opset, nodes = export_onnx(model_path, onnx_path)
    return f"ONNX model (opset {opset}, {nodes} nodes) written to {onnx_path}"
