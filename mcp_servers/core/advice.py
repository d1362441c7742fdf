"""The advice of a policy violation, worded for who asks: an agent, or the person at the shell.

The policy's verdict is the same for everyone: a change to a protected file is never committed through the gate,
whoever ran it, so no receipt can cover it. What differs is what to do about it. An agent is told to undo the
change (`rm`, `git checkout`). The person owns those files (the ones `overnight init` wrote, the configuration,
the plan): they are protected from agents, not from the person, so `overnight check` at the shell never tells
them to delete their own setup; it says to commit the file themselves, on its own, and the gate judges the rest.

Only the wording changes, and only for callers that say a person asks (`overnight check` outside a session):
the violations stay, so `safe` and the gate's verdict are those an agent would get.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from .models import Violation

# the rules that say a file is the person's: protected from agents, and the plan edited by hand
_OWNED = {"protected-path", "plan-edit"}
# the rules that only restate, for a file the person may change, that agents may not
_RESTATED = {"outside-allowed", "out-of-scope"}
# where the agent's part of a message starts ("... was modified; only a person may change it")
_AGENT_CLAUSES = ("; only a person may change it", ": only people edit the plan")


def for_person(violations: Iterable[Violation]) -> list[Violation]:
    """`violations`, with the person's own changes to protected files explained as theirs to commit."""
    found = list(violations)
    protected = {v.path for v in found if v.rule in _OWNED and v.path}
    advised: list[Violation] = []
    for v in found:
        if v.path not in protected:
            advised.append(v)
        elif v.rule in _OWNED:
            advised.append(_yours(v))
        elif v.rule not in _RESTATED:
            advised.append(v)
    return advised


def _yours(v: Violation) -> Violation:
    path = shlex.quote(v.path or "")
    message = v.message
    for clause in _AGENT_CLAUSES:
        message = message.partition(clause)[0]
    return v.model_copy(
        update={
            "message": f"{message}: protected from agents, not from you",
            "fix": f"nothing to undo if the change is yours: commit it on its own (`git add -A -- {path} && "
            f"git commit -m 'MESSAGE' -- {path}`, with `--no-verify` if overnight's receipt hook refuses it), "
            "then the gate judges the rest",
        }
    )
