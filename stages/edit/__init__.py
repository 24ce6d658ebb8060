"""``edit``: the interactive trajectory editor (``session``: state; ``viewer``: the browser UI)."""

from .session import EditorSession, default_size

__all__ = ["EditorSession", "default_size"]
