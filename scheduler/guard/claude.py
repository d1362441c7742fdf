"""Claude Code's `PreToolUse` hook: `python -I -m scheduler.guard.claude` reads the hook input on stdin and refuses
a call by exiting 2 with the reason on stderr (Claude Code passes that reason to the model; any other exit code
lets the call through, so this fails closed: a call it cannot judge is refused). The judging is `scheduler.guard`.
"""

from __future__ import annotations

import json
import os
import sys

from . import judge

BLOCK = 2


def main() -> int:
    try:
        event = json.loads(sys.stdin.read() or "{}")
        reason = judge(event if isinstance(event, dict) else {}, os.environ)
    except Exception as e:  # fail closed: a call the guard cannot judge is refused
        reason = f"the guard could not check this call ({type(e).__name__}: {e})"
    if reason is None:
        return 0
    sys.stderr.write(f"overnight refused this: {reason}.\n")
    return BLOCK


if __name__ == "__main__":
    raise SystemExit(main())
