"""The ``realcam`` command line: a Typer app whose commands are the pipeline stages."""
