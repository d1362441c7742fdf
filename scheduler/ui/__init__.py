"""The local web command center (issue 14)."""
