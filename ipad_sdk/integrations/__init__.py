"""Integrations with scale-out engines (imported on demand; each needs its own extra)."""
