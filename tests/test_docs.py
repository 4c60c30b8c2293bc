"""Documentation that is generated from the code stays in step with it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_config_reference_is_current() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "config_reference.py"),
                           "--check"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
