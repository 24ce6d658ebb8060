"""Shared core: cameras, Plücker embedding, artifacts, video I/O and the library error type."""
