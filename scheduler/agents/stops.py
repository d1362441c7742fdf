"""Infrastructure stops: a run that ended because the model's API stopped it, not because of the work (issue 12).

What every agent shares: the kinds of stop and the `InfraStop` its adapter reads from its CLI's own structured
output, never from text a tool printed (issue 13): Claude Code's stream-json in `claude_stops`, Codex's events
in `codex_events`, Gemini's exit code and last line in `gemini_stream`, the command agent's result file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Kind = Literal["usage-limit", "overloaded", "server-error", "network", "limit-disabled"]
KINDS: tuple[Kind, ...] = ("usage-limit", "overloaded", "server-error", "network", "limit-disabled")


class InfraStop(BaseModel):
    """How the model's API stopped a run: what kind of stop, when a usage limit resets (epoch seconds, when the
    stream says), and the structured fields it was read from."""

    kind: Kind
    resets_at: float | None = Field(default=None, description="when a usage limit resets, epoch seconds")
    limit_type: str | None = Field(default=None, description="rateLimitType: five_hour, seven_day, overage, ...")
    status: int | None = Field(default=None, description="the API's HTTP status (api_error_status)")
    detail: str = Field(default="", description="what the stream said, in a few words")
    retries: int = Field(default=0, description="retries Claude Code made itself before giving up (api_retry)")

    def describe(self) -> str:
        """One line for a report: what stopped the run."""
        words = {"usage-limit": "the usage limit was reached", "overloaded": "the API was overloaded",
                 "server-error": "the API had a server error", "network": "the API could not be reached",
                 "limit-disabled": "the usage allowance is disabled (it does not reset)"}[self.kind]  # fmt: skip
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{words}{status}" + (f": {self.detail}" if self.detail else "")
