"""overnight's MCP servers (`quality`, `project`, `memory`) and the core they share."""
