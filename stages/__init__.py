"""realcam library: one module per pipeline stage plus the shared core (``stages.core``).

Importable without the CLI; the ``realcam`` command in ``realcam_cli`` is a thin layer over it.
"""

__version__ = "0.1.0"
