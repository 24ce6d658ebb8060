"""Files from the Hugging Face Hub without the wait: the local cache first, the network only when
it answers.

``huggingface_hub`` retries an unreachable Hub for about half a minute per file and prints a line
per retry before it gives up. Here a file already in the cache is used at once; otherwise, when
``HF_HUB_OFFLINE`` is set or the Hub's host cannot be reached within a few seconds, the file is
reported missing at once, so a command can name every missing file in one line with the
``hf download`` command that fetches it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=4)
def _reachable(endpoint: str) -> bool:
    """One TCP connection to the endpoint, name resolution included, within PROBE_TIMEOUT_S (a
    resolver that hangs is given up on: the look-up runs in a daemon thread)."""
    import threading

    url = urlparse(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return False
    result = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT_S + 0.5)
    return bool(result and result[0])


def hub_online() -> bool:
    """Whether a download could work: not in offline mode and the Hub endpoint answers."""
    if offline_mode():
        return False
    from huggingface_hub import constants

    return _reachable(constants.ENDPOINT)


def cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def download_command(repo: str, filename: str | None = None) -> str:
    return f"hf download {repo}" + (f" {filename}" if filename else "")


def cached_file(repo: str, filename: str) -> Path | None:
    """The file's path in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id=repo, filename=filename)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_file(repo: str, filename: str) -> tuple[Path | None, str]:
    """``(path, "")`` for a cached or downloadable file, else ``(None, reason)``; never waits on an
    unreachable Hub and prints no retry lines."""
    found = cached_file(repo, filename)
    if found is not None:
        return found, ""
    if not hub_online():
        return None, "not in the cache, offline" if offline_mode() else "not in the cache, Hub unreachable"
    from huggingface_hub import hf_hub_download

    quiet = logging.getLogger("huggingface_hub")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename)), ""
    except Exception as exc:  # no such repo or file, gated, network error: all the same to the user
        return None, type(exc).__name__
    finally:
        quiet.setLevel(level)


def hub_model_available(repo: str, marker: str = "config.json") -> tuple[bool, str]:
    """Whether ``from_pretrained(repo)`` can succeed now: a local folder, a cached snapshot (its
    ``marker`` file, e.g. ``config.json`` or ``vocab.json``), or a reachable Hub."""
    if Path(repo).exists():
        return True, ""
    if cached_file(repo, marker) is not None:
        return True, ""
    if not hub_online():
        return False, "not in the cache, offline" if offline_mode() else "not in the cache, Hub unreachable"
    return True, ""


@contextlib.contextmanager
def quiet_loading():
    """No warning, retry line or progress bar from ``huggingface_hub``, ``transformers`` and
    ``diffusers`` while a model loads (an unreachable Hub prints one per retry); errors still come
    back as exceptions."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers", "diffusers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as tf_logging

    bars_off, tf_bars = are_progress_bars_disabled(), tf_logging.is_progress_bar_enabled()
    disable_progress_bars()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if not bars_off:
            enable_progress_bars()
        if tf_bars:
            tf_logging.enable_progress_bar()


def is_hub_id(model: str) -> bool:
    """``model`` reads as a Hugging Face id (``name`` or ``owner/name``), not as a local path."""
    return (
        not Path(model).expanduser().exists()
        and not model.startswith((".", "/", "~"))
        and model.count("/") <= 1
        and "\\" not in model
    )


def hub_model_kwargs(model: str, what: str) -> dict:
    """``from_pretrained`` keyword arguments for a model that is not a local folder: from the local
    cache alone when it is there, else from a reachable Hub; otherwise one error naming the model
    (``what``: "depth model", "CLIP model") and the ``hf download`` command."""
    from .errors import RealcamError

    if not is_hub_id(model):
        raise RealcamError(f"no such {what} folder", model)
    try:
        cached = cached_file(model, "config.json")
    except ValueError:  # huggingface_hub's HFValidationError: not a well-formed repository id
        raise RealcamError(f"neither a {what} folder nor a Hugging Face model id", model) from None
    if cached is not None:
        return {"local_files_only": True}
    available, reason = hub_model_available(model)
    if not available:
        raise RealcamError(f"the {what} is {reason}; fetch it with `{download_command(model)}`", model)
    return {}
