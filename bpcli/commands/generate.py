"""``bp generate``: draw new rows from a GAN's model file, as CSV in the data's columns
and units, or for images as a PNG grid."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from bpcli.atomic import write_text_atomic
from bpcli.errors import UsageError
from bpcli.files import output_path
from bpcli.ganbuild import layout_of_meta
from bpcli.modelfile import load_gan

#: rows drawn at most, far beyond a use for a grid or a table; bounds time and memory
MAX_ROWS = 1_000_000


def generate(model_path: Path, n: int, seed: int, out: Path | None) -> int:
    """Write ``n`` generated rows to ``out`` (standard output when ``None`` or ``-``): a
    CSV, or a PNG grid when ``out`` ends in ``.png`` (images only). Returns ``n``."""
    if not 1 <= n <= MAX_ROWS:
        raise UsageError(f"-n {n}: draw between 1 and {MAX_ROWS:,} rows")
    if out is not None:
        out = output_path(out, model_path)
    saved = load_gan(model_path)
    layout = layout_of_meta(saved.meta["gan"])
    rng = np.random.default_rng(seed)
    rows = saved.gan.sample(n, rng)
    if out is not None and out.suffix.lower() == ".png":
        if layout.image_shape is None:
            raise UsageError(f"--out {out}: a PNG grid draws images; this GAN makes table "
                             "rows: write a .csv")
        from bpcli.plots import image_grid

        pixels = rows.reshape(n, *layout.image_shape)
        image_grid(np.asarray(pixels, dtype=np.float64), out)
        return n
    header, cells = layout.decode(rows, saved.preprocessor, rng)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(cells)
    if out is None:
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()
    else:
        write_text_atomic(out, buffer.getvalue())
    return n
