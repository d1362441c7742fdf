"""The core that the servers, the scheduler and the CLI sit on.

It never imports `mcp`, a server or the scheduler: adapters import the core, not the other way round.
"""

from __future__ import annotations

__version__ = "0.1.0"
