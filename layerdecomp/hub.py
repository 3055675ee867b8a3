"""The Hugging Face hub as the loaders find it: offline or not, reachable or not, a file cached.

Asked before a download is tried, so that weights the hub cannot give (offline, or no network)
and the local cache does not hold are refused in one line within a second, instead of after
the libraries' retries (half a minute, a line per retry) with a message about a missing file.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from urllib.parse import urlparse

PROBE_SECONDS = 1.0
"""How long the hub may take to accept a connection before it counts as unreachable."""


def offline() -> bool:
    """True when the Hugging Face hub libraries will not contact the hub.

    This is ``huggingface_hub.is_offline_mode()``, the flag its downloads (and so diffusers',
    transformers' and open_clip's) obey. It reflects ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``
    as they were when ``huggingface_hub`` was imported: setting the variable later changes
    nothing the libraries do, so reading ``os.environ`` here could report a mode they ignore.
    """
    from huggingface_hub import is_offline_mode

    return bool(is_offline_mode())


def endpoint() -> tuple[str, int]:
    """(host, port) of the hub the libraries use (``HF_ENDPOINT``, by default huggingface.co)."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@lru_cache(maxsize=4)
def _connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError:  # no such name (no DNS), refused, unreachable, timed out
        return False
    return True


def unavailable() -> str | None:
    """Why the hub cannot give a file now, in words (``None``: it can be asked). Probed once per
    process, within :data:`PROBE_SECONDS`."""
    if offline():
        return "the hub is offline (HF_HUB_OFFLINE is set)"
    host, port = endpoint()
    if not _connects(host, port):
        return f"the hub ({host}) cannot be reached"
    return None


def cached(repo_id: str, filename: str) -> str | None:
    """The cached path of ``filename`` of the hub repository ``repo_id``, or ``None``."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


__all__ = ["PROBE_SECONDS", "cached", "endpoint", "offline", "unavailable"]
