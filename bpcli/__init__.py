"""bp: train neural networks with backpropagation from a YAML config and a CSV file.

From Python: ``model = bpcli.load("runs/iris-.../model.npz")``, then
``model.predict(rows)`` and ``model.predict_proba(rows)`` (see ``bpcli.api``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["BpError", "Model", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # loaded on first use: the command line reads __version__ before NumPy may load
    if name in ("load", "Model"):
        from bpcli import api

        return getattr(api, name)
    if name == "BpError":
        from bpcli.errors import BpError

        return BpError
    raise AttributeError(f"module 'bpcli' has no attribute {name!r}")
