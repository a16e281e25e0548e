"""Model weights: the cache folder, downloads on request, and finding a cached checkpoint.

Nothing is ever downloaded implicitly: :func:`fetch` (``slicesam models fetch NAME``) is the only
thing that touches the network. Loading a checkpoint-based model without ``checkpoint=`` looks
in the cache folder (:func:`cached_checkpoint`) and otherwise fails with the command to run.

The cache folder is ``$SLICESAM_CACHE_DIR`` when set, else the platform's user cache folder:
``$XDG_CACHE_HOME/slicesam/models`` (default ``~/.cache/slicesam/models``) on Linux,
``~/Library/Caches/slicesam/models`` on macOS, ``%LOCALAPPDATA%\\slicesam\\cache\\models`` on
Windows.

Integrity: a model whose publisher gives a sha256 (SAM) is checked against it after every
download and every load. For a model with no published hash (MedSAM, MobileSAM) the sha256 of
the first file fetched into (or loaded from) the cache folder is recorded next to it in
``<file>.sha256`` (``sha256sum`` format) and every later load is checked against that record
(trust on first use). No torch here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import CheckpointError
from ..user_cache import models_dir
from .weights import weights_for

_log = logging.getLogger("slicesam")

#: ``progress(done_bytes, total_bytes)``; total is None when the server does not say.
ProgressCallback = Callable[[int, "int | None"], None]

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """The folder model weights are fetched into and looked up in (see the module docstring)."""
    return models_dir()


def cache_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where model ``name``'s weights file lives in the cache folder (it may not exist)."""
    return Path(cache_dir or default_cache_dir()) / weights_for(name).filename


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: str | Path) -> str | None:
    """The sha256 recorded for a cached file on first use, or None."""
    record = _record_path(Path(path))
    try:
        text = record.read_text().split()
    except OSError:
        return None
    return text[0].lower() if text and len(text[0]) == 64 else None


def _write_record(path: Path, digest: str) -> None:
    record = _record_path(path)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(tmp, record)


def _put_hint(url: str, dest: Path) -> str:
    return (
        f"download {url} by other means and save it as {dest} "
        f"(or pass the file with --checkpoint PATH / Session(checkpoint=PATH))"
    )


def fetch(
    name: str,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    url: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download model ``name``'s weights into the cache folder; return the file's path.

    The file is written to a temporary name in the cache folder and renamed into place only
    when complete and verified, so an interrupted download never leaves a partial checkpoint.

    Args:
        name: registry name ("sam_vit_b", "medsam", "mobilesam", ...).
        cache_dir: the cache folder; default :func:`default_cache_dir`.
        progress: called as ``progress(done_bytes, total_bytes_or_None)`` while downloading.
        url: download from this address instead of the official one (a mirror, ``file://``).
        force: download again even when a verified file is already there.
        timeout: seconds to wait for the server on connect and on each read.

    Returns:
        the path of the verified weights file.

    Raises:
        CheckpointError: offline or the server failed (the message gives the URL and where to
            put the file by hand), or the download fails its sha256 check.
        ModelError: unknown model, or one without a weights file (classical backends).
    """
    weights = weights_for(name)
    folder = Path(cache_dir or default_cache_dir())
    dest = folder / weights.filename
    source = url or weights.url
    if dest.is_file() and not force:
        try:
            verify_cached(name, dest)
            return dest
        except CheckpointError:
            pass  # corrupt or different: download again
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the cache folder {folder}: {exc}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{weights.filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(source, timeout=timeout)  # noqa: S310
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise CheckpointError(
                    f"cannot download {name} from {source}: {reason}. " + _put_hint(source, dest)
                ) from None
            with response:
                length = response.headers.get("Content-Length") if response.headers else None
                total = int(length) if length and length.isdigit() else None
                done = 0
                if progress is not None:
                    progress(done, total)
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (urllib.error.URLError, OSError) as exc:
                        raise CheckpointError(
                            f"download of {name} from {source} broke off after {done} bytes "
                            f"({exc}); run the command again, or " + _put_hint(source, dest)
                        ) from None
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done != total:
                raise CheckpointError(
                    f"download of {name} from {source} is incomplete ({done} of {total} bytes); "
                    "run the command again"
                )
        got = digest.hexdigest()
        if weights.sha256 and got != weights.sha256:
            raise CheckpointError(
                f"the file downloaded from {source} fails the sha256 check for {name} "
                f"(got {got}, expected {weights.sha256}); nothing was saved"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are not secret
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_record(dest, got)
    return dest


def verify_cached(name: str, path: str | Path, digest: str | None = None) -> str:
    """Check a cached weights file; return its sha256.

    Against the published sha256 when there is one, else against the hash recorded on first
    use; with neither, the file's hash is recorded now (first use).

    Raises:
        CheckpointError: the hash differs (the message says how to fetch the file again).
    """
    from .checkpoints import file_sha256

    weights = weights_for(name)
    path = Path(path)
    digest = digest or file_sha256(path)
    expected = weights.sha256 or recorded_sha256(path)
    if expected is None:
        try:
            _write_record(path, digest)
        except OSError as exc:  # a read-only cache folder: load anyway, unrecorded
            _log.warning("cannot record the sha256 of %s (%s)", path, exc)
        return digest
    if digest != expected:
        what = "published" if weights.sha256 else f"recorded on first use in {path}.sha256"
        raise CheckpointError(
            f"{path} fails its sha256 check for {name} (got {digest[:12]}…, {what} "
            f"{expected[:12]}…): the file is corrupt, incomplete or was replaced. Run "
            f"`slicesam models fetch {name} --force` (or delete it and its .sha256 record)"
        )
    return digest


def cached_checkpoint(name: str, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """The verified cached weights of ``name`` as (path, sha256), for loading with no checkpoint.

    Raises:
        CheckpointError: not in the cache (the message gives ``slicesam models fetch NAME``, the
            URL and the exact path to put the file at), or it fails its hash check.
    """
    weights = weights_for(name)
    path = cache_path(name, cache_dir)
    if not path.is_file():
        raise CheckpointError(
            f"model {name} needs its weights file {weights.filename}, which is not in the "
            f"cache folder. Run `slicesam models fetch {name}` to download it, or "
            + _put_hint(weights.url, path)
        )
    return path, verify_cached(name, path)


def resolve_checkpoint(name: str, checkpoint: str | Path | None) -> tuple[Path, str]:
    """(path, sha256) of the weights to load for ``name``: ``checkpoint``, else the cached file.

    A given file's hash is computed and returned, not checked (fine-tuned weights are
    welcome); the cached file is checked (:func:`verify_cached`).

    Raises:
        CheckpointError: the given file does not exist, or see :func:`cached_checkpoint`.
    """
    from .checkpoints import file_sha256

    if checkpoint is None or str(checkpoint) == "":
        return cached_checkpoint(name)
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        weights = weights_for(name)
        raise CheckpointError(
            f"checkpoint file {what}: {path} (model {name} expects {weights.filename}; "
            f"`slicesam models fetch {name}` downloads it into the cache folder)"
        )
    return path, file_sha256(path)
