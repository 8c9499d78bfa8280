"""Shared, UI-free pieces: configuration, progress state, limits."""
