"""What the command center's tests share: a planned repository with a task waiting for approval and titles that
try to inject HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import GitRepo
from ..scheduler.sessions import GOOD, SCOPE, make_planned

XSS_SCRIPT = "<script>alert('xss-1')</script>"
XSS_IMG = '"><img src=x onerror="alert(\'xss-2\')">'


def card(task_id: str, title: str) -> str:
    return f"- **[{task_id}]** {title}\n  - Priority: P1\n{GOOD}{SCOPE}"


PLAN = (
    "# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n"
    + card("sub", "Add sub()")
    + card("xss", f"Title {XSS_SCRIPT} and {XSS_IMG}")
    + "\n### Pending Approval ⏳\n"
    + card("mul", "Add mul()")
    + "\n### Not Ready ❌\n"
    + card("neg", "Add neg()")
)


@pytest.fixture
def planned(tmp_path: Path) -> GitRepo:
    return make_planned(tmp_path / "repo", PLAN)
