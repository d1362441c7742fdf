"""A project's own virtualenv, made in a second, without network: the project keeps its environment apart from
overnight's (issue 11, item 2). Its packages are links to the ones the tests run with, inside the venv folder
(the sandbox shows the venv folder, nothing else of the project's side)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

PYTEST = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py.py", "pygments")


def make_venv(folder: Path, *, coverage: bool = True, editable: Path | None = None, base: str = sys.executable) -> Path:
    """A venv at `folder` (no pip) with pytest (and coverage.py) importable; `editable`: a folder put on its path
    by a .pth file, as `pip install -e .` does for a src layout; `base`: the interpreter it is made from.
    Returns its `bin/python`."""
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
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


def other_python() -> str | None:
    """An interpreter of another minor version than this one (pyenv's, else on PATH but not a pyenv shim)."""
    import glob
    import shutil

    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for minor in ("3.12", "3.13", "3.11"):
        if minor == own:
            continue
        found = sorted(glob.glob(f"{PYENV}/versions/{minor}.*/bin/python{minor}"))
        on_path = shutil.which(f"python{minor}")
        if found:
            return found[-1]
        if on_path and "/shims/" not in on_path:
            return on_path
    return None


PYENV = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")  # read before the tests move HOME
