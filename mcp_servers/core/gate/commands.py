"""Extra checks from `[[gate.commands]]` in overnight.toml (ruff, mypy, a benchmark): pass on exit 0."""

from __future__ import annotations

import time

from ..config import CommandCheck, Settings, resolve_python
from ..models import CheckResult, Finding
from .base import Check, GateContext, result


def _runner(spec: CommandCheck) -> Check:
    def run(ctx: GateContext) -> CheckResult:
        started = time.monotonic()
        completed = ctx.run_code(resolve_python(spec.run, ctx.python), env=ctx.env(), timeout=spec.timeout_s)
        if completed.ok:
            return result(spec.name, True, f"`{' '.join(spec.run)}` passed", started=started)
        how = f"timed out after {spec.timeout_s:.0f}s" if completed.timed_out else f"exit {completed.returncode}"
        output = (completed.text() + completed.stderr.decode("utf-8", "replace")).rstrip().splitlines()
        return result(
            spec.name,
            False,
            f"`{' '.join(spec.run)}` failed ({how}); fix what it reports",
            [Finding(message="\n".join(output[-40:]))] if output else [],
            started,
        )

    return Check(name=spec.name, run=run)


def checks(settings: Settings) -> list[Check]:
    return [_runner(spec) for spec in settings.gate.commands]
