"""A project's own virtualenv, made in a second, without network: the project keeps its environment apart from
overnight's (issue 11, item 2). Its packages are links to the ones the tests run with, inside the venv folder
(the sandbox shows the venv folder, nothing else of the project's side)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

PYTEST = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py.py", "pygments")


def make_venv(folder: Path, *, coverage: bool = True, editable: Path | None = None) -> Path:
    """A venv at `folder` (no pip) with pytest (and coverage.py) importable; `editable`: a folder put on its path
    by a .pth file, as `pip install -e .` does for a src layout. Returns its `bin/python`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])
    shim = folder / "shim"
    shim.mkdir()
    for name in (*PYTEST, *(("coverage",) if coverage else ())):
        if (site / name).exists():
            (shim / name).symlink_to(site / name)
    venv_site = next((folder / "lib").glob("python3*/site-packages"))
    lines = [str(shim)] + ([str(editable)] if editable is not None else [])
    (venv_site / "_project_env.pth").write_text("\n".join(lines) + "\n")
    return folder / "bin" / "python"
