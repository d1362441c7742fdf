"""The exceptions the core raises. Each message says what went wrong and what to do about it.

Adapters turn them into output in one place: the MCP servers into `ToolError`, the CLI into a line on
stderr and an exit code.
"""

from __future__ import annotations


class OvernightError(Exception):
    """A failure a person or an agent can act on; the message says how."""


class UsageError(OvernightError):
    """The request itself is wrong: a bad argument, a path outside the repository, an unknown id."""


class ConfigError(OvernightError):
    """`overnight.toml` is missing a required value, has a wrong type, or does not parse."""


class GitError(OvernightError):
    """git failed, or the repository is in a state we refuse to work in (no commits, a merge in progress)."""


class StateError(OvernightError):
    """The state directory (database, key file) is unusable."""


class GateError(OvernightError):
    """The quality gate could not run, or refused to commit a tree that did not pass."""
