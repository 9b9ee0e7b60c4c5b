"""Test kit for trader and its plugin authors (imported explicitly, never by the core)."""
