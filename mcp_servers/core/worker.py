"""Runs radon and bandit in a child process: `python -m mcp_servers.core.worker < request.json`.

Both are slow on some inputs (radon's raw metrics once took 110 s on one file), and only a process can be
killed at a timeout. Keeping them out of the servers also keeps the servers' start-up fast. The request
and the answer are JSON; files are given as {repository-relative path: path on disk}. It sits outside the
`gate` package on purpose: starting it must not import the gate (pydantic models, the policy), only this.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

_LEVELS = {"low": 1, "medium": 2, "high": 3}


def radon(files: dict[str, str]) -> dict[str, Any]:
    """Cyclomatic complexity of every function and method, and the maintainability index, per file."""
    from radon.complexity import cc_visit
    from radon.metrics import mi_visit

    out: dict[str, Any] = {}
    for rel, disk in files.items():
        source = Path(disk).read_text(encoding="utf-8", errors="replace")
        try:
            blocks = cc_visit(source)
            mi = float(mi_visit(source, multi=True))
        except (SyntaxError, ValueError) as e:
            out[rel] = {"error": f"cannot be parsed: {e}", "functions": [], "mi": None}
            continue
        functions = []
        for block in _flatten(blocks):
            functions.append(
                {"name": block.fullname, "line": block.lineno, "end": block.endline, "cc": block.complexity}
            )
        out[rel] = {"functions": functions, "mi": round(mi, 2), "error": None}
    return out


def _flatten(blocks: list[Any]) -> list[Any]:
    """Each function, method and closure once: radon's `cc_visit` lists a class's methods both after the class and
    in it (issue 11: `health` listed each method twice)."""
    found: dict[tuple[str, int], Any] = {}
    for block in blocks:
        if hasattr(block, "methods"):  # a class: its methods carry the complexity
            inner = _flatten(list(block.methods) + list(getattr(block, "inner_classes", [])))
        else:
            inner = [block, *_flatten(list(getattr(block, "closures", [])))]
        for each in inner:
            found.setdefault((each.fullname, each.lineno), each)
    return list(found.values())


def bandit(files: dict[str, str], config: str | None, severity: str, confidence: str) -> list[dict[str, Any]]:
    """bandit's findings at or above the given severity and confidence."""
    import logging

    logging.getLogger("bandit").setLevel(logging.ERROR)
    from bandit.core import config as bandit_config
    from bandit.core import manager

    conf = bandit_config.BanditConfig(config) if config else bandit_config.BanditConfig()
    # `# nosec` is ignored on both sides: a suppression the agent adds must not hide a new finding, and one
    # already in the base cancels out because the base finding is then counted too.
    mgr = manager.BanditManager(conf, "file", quiet=True, ignore_nosec=True)
    by_disk = {str(Path(d)): rel for rel, d in files.items()}
    mgr.discover_files(list(by_disk), recursive=False)
    mgr.run_tests()
    issues = mgr.get_issue_list(sev_level=severity.upper(), conf_level=confidence.upper())
    return [
        {
            "path": by_disk.get(str(Path(i.fname)), i.fname),
            "line": i.lineno,
            "test_id": i.test_id,
            "severity": i.severity.lower(),
            "confidence": i.confidence.lower(),
            "text": i.text,
            "cwe": getattr(i.cwe, "id", None),
        }
        for i in issues
    ]


def main() -> int:
    with contextlib.suppress(OSError):  # beside the tests, which the gate waits for: they get the CPU first
        os.nice(10)
    request = json.load(sys.stdin)
    task = request["task"]
    if task == "radon":
        answer: Any = radon(request["files"])
    elif task == "bandit":
        args = (request.get("config"), request["severity"], request["confidence"])
        answer = {"files": bandit(request["files"], *args)}
        if request.get("base"):  # the base's versions in the same process: one start, one bandit import
            answer["base"] = bandit(request["base"], *args)
    else:
        print(f"unknown task {task!r}", file=sys.stderr)
        return 2
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
