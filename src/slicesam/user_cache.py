"""The user's cache folders: model weights, autosaved sessions that cannot sit next to their
image, and on-disk embeddings.

``$SLICESAM_CACHE_DIR`` when set (weights directly in it, the others in sub-folders), else the
platform's user cache folder: ``$XDG_CACHE_HOME/slicesam`` (default ``~/.cache/slicesam``) on
Linux, ``~/Library/Caches/slicesam`` on macOS, ``%LOCALAPPDATA%\\slicesam\\cache`` on Windows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "SLICESAM_CACHE_DIR"


def _platform_root() -> Path:
    home = Path.home()
    if sys.platform == "win32":  # pragma: no cover
        return (
            Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
            / "slicesam"
            / "cache"
        )
    if sys.platform == "darwin":  # pragma: no cover
        return home / "Library" / "Caches" / "slicesam"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache") / "slicesam"


def _env_root() -> Path | None:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else None


def models_dir() -> Path:
    """Where model weights are fetched into and looked up in."""
    root = _env_root()
    return root if root is not None else _platform_root() / "models"


def sessions_dir() -> Path:
    """Where autosaved sessions go when their image's folder cannot take them."""
    return (_env_root() or _platform_root()) / "sessions"


def embeddings_dir() -> Path:
    """The default root of on-disk embedding stores."""
    return (_env_root() or _platform_root()) / "embeddings"
