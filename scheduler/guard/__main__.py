"""`python -m scheduler.guard`: Claude Code's hook, as before the guard had one module per agent."""

from __future__ import annotations

from .claude import main

raise SystemExit(main())
