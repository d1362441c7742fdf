"""What the command center's pages show, each a pure function of the workspace returning pydantic models."""
