"""Downloads from the Hugging Face Hub, only when the user asks: progress, resume, cancel, free-disk check.

Files go into the standard Hugging Face cache, in the hub's own layout (shared with other tools, so a
model already there is used where it is and never downloaded twice). ``huggingface_hub`` finds the
cache, the URLs and each file's metadata; the bytes are streamed here because its own download deletes
a partial file when interrupted. An interrupted or cancelled download keeps its ``.incomplete`` blob and
the next attempt resumes it with an HTTP range request.

The offline setting (:attr:`ModelSettings.offline`) refuses every download before any network access.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, MegaPortraitError, RequestError
from ..model_settings import DEFAULT_CONFIGS, ROLES, ModelSettings, ModelSpec, load_settings, save_settings
from ..progress import CancelToken
from .manager import hf_cache_dir

#: What to fetch for a base model (safetensors weights and the small config files; no fp16 duplicates).
BASE_FILES = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
              "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
              "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
              "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors")
CONTROLNET_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
#: Free space kept beyond the download itself.
DISK_MARGIN = 512 << 20


class OfflineError(MegaPortraitError):
    """A download was asked for while the app (or the Hugging Face hub) is set to work offline."""


class NetworkError(MegaPortraitError):
    """The Hub could not be reached (no network, a proxy, the server down)."""


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report: bytes done of total (across all files), bytes per second, seconds left (or ``None``)."""

    file: str
    done: int
    total: int
    speed: float
    eta: float | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def default_repo(role: str) -> str:
    """The repo id a role's model is downloaded from when the user names none."""
    if role not in ROLES:
        raise RequestError(f"{role!r} cannot be downloaded: the downloadable roles are {', '.join(ROLES)}; "
                           "insightface and annotator weights come in a model pack.")
    return DEFAULT_CONFIGS[role]


def files_for(role: str) -> tuple[str, ...]:
    return BASE_FILES if role == "base" else CONTROLNET_FILES


def download_role(role: str, repo_id: str | None = None, *, settings: ModelSettings | None = None,
                  on_progress: Callable[[DownloadProgress], None] | None = None, cancel: CancelToken | None = None,
                  endpoint: str | None = None, cache_dir: Path | None = None, revision: str | None = None,
                  use: bool = True) -> Path:
    """Download ``role``'s model into the Hugging Face cache (what is there already is not fetched again).

    Parameters
    ----------
    role, repo_id:
        The role and the repo to fetch (default: :func:`default_repo`).
    settings:
        The model settings (default: ``models.json``); offline mode refuses the download.
    on_progress, cancel:
        Progress in bytes with speed and ETA; cancelling stops at the next chunk and keeps the partial
        file so the next attempt resumes it.
    endpoint, cache_dir, revision:
        The Hub address (default ``huggingface.co``), the cache (default: the standard one) and revision.
    use:
        Choose the downloaded repo for ``role`` in ``models.json``.

    Returns
    -------
    Path
        The snapshot folder in the cache.

    Raises
    ------
    OfflineError, NetworkError, Cancelled, MegaPortraitError
        Offline mode, no network, cancelled, not enough disk space.
    """
    settings = settings if settings is not None else load_settings()
    repo_id = repo_id or default_repo(role)
    if role not in ROLES:
        default_repo(role)
    if settings.offline:
        raise OfflineError(f"Offline mode is on, so {repo_id} is not downloaded. Turn offline mode off in "
                           "the app (Models → Model Manager, untick Offline mode) or with "
                           "'python main.py models offline off', or install an offline model pack.")
    import huggingface_hub.constants as hub_constants
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if hub_constants.HF_HUB_OFFLINE:
        raise OfflineError(f"HF_HUB_OFFLINE is set in the environment, so {repo_id} is not downloaded; unset it "
                           "to download.")
    cache = Path(cache_dir) if cache_dir else hf_cache_dir()
    files = files_for(role)
    missing = [f for f in files if not isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache,
                                                                         revision=revision), str)]
    metas = {}
    for name in missing:
        try:
            metas[name] = get_hf_file_metadata(hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint))
        except Exception as exc:  # noqa: BLE001 - httpx, hub and OS errors all mean "could not reach it"
            raise _network_error(repo_id, exc) from None
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    partial = {name: _partial_size(repo_dir, meta.etag) for name, meta in metas.items()}
    total = sum(meta.size or 0 for meta in metas.values())
    cache.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if total - sum(partial.values()) + DISK_MARGIN > free:
        raise MegaPortraitError(f"Not enough free disk space for {repo_id}: it needs {total / 1e9:.2f} GB, "
                                f"{free / 1e9:.2f} GB is free in {cache}.")
    tracker = _Tracker(total, on_progress, cancel or CancelToken())
    # Files already in the cache are not even checked for updates: no request at all for them.
    for name, meta in metas.items():
        tracker.file = name
        url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint)
        try:
            _fetch_into_cache(url, repo_dir, name, meta, revision or "main", tracker)
        except (Cancelled, MegaPortraitError):
            raise
        except Exception as exc:  # noqa: BLE001 - httpx and OS errors while streaming
            raise _network_error(repo_id, exc) from None
    # The first file of each list lies at the repo's root, so its folder is the snapshot.
    snapshot = Path(try_to_load_from_cache(repo_id, files[0], cache_dir=cache, revision=revision)).parent
    if use:
        save_settings(load_settings().with_model(role, ModelSpec(repo_id)))
    return snapshot


def _partial_size(repo_dir: Path, etag: str | None) -> int:
    path = repo_dir / "blobs" / f"{etag}.incomplete"
    return path.stat().st_size if etag and path.is_file() else 0


def _fetch_into_cache(url: str, repo_dir: Path, name: str, meta, revision: str, tracker: _Tracker) -> None:
    """Stream one file into the Hugging Face cache layout, resuming a partial blob with a range request.

    The layout is the hub's own (``blobs/<etag>``, ``snapshots/<commit>/<file>`` linking to it,
    ``refs/<revision>``), so ``huggingface_hub`` and other tools find the file. ``huggingface_hub``'s
    own download removes a partial file when interrupted; streaming here keeps it, so a cancelled or
    dropped multi-gigabyte download continues where it stopped.
    """
    import hashlib

    from huggingface_hub.utils import WeakFileLock, build_hf_headers, get_session

    if not meta.commit_hash or not meta.etag:
        raise MegaPortraitError(f"The server gave no commit or ETag for {name}; it is not a Hugging Face Hub.")
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / meta.etag
    incomplete = blobs / f"{meta.etag}.incomplete"
    lock = hub_lock_path(repo_dir, meta.etag)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):  # the hub's own lock on this blob: another tool fetching it now waits, and we for it
        if not blob.exists():
            # An LFS file's ETag is its SHA-256: check it, the resumed part included.
            digest = hashlib.sha256() if len(meta.etag) == 64 else None
            start = incomplete.stat().st_size if incomplete.exists() else 0
            if digest is not None and start:
                with incomplete.open("rb") as f:
                    while chunk := f.read(1 << 24):
                        digest.update(chunk)
            tracker.current = start
            headers = build_hf_headers()
            headers["Accept-Encoding"] = "identity"
            if start:
                headers["Range"] = f"bytes={start}-"
            with get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=30) as response:
                response.raise_for_status()
                mode = "ab"
                if start and response.status_code != 206:  # the server ignored the range: start again
                    mode, tracker.current = "wb", 0
                    digest = hashlib.sha256() if digest is not None else None
                with incomplete.open(mode) as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        if digest is not None:
                            digest.update(chunk)
                        tracker.add(len(chunk))
            size = incomplete.stat().st_size
            if meta.size is not None and size != meta.size:
                raise NetworkError(f"{name} arrived with {size} of {meta.size} bytes; download it again to resume.")
            if digest is not None and digest.hexdigest() != meta.etag:
                incomplete.unlink()
                raise MegaPortraitError(f"{name} does not match its SHA-256 after downloading; it was removed, "
                                        "download it again.")
            os.replace(incomplete, blob)
        pointer = repo_dir / "snapshots" / meta.commit_hash / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if not pointer.exists():
            try:
                pointer.symlink_to(os.path.relpath(blob, pointer.parent))
            except OSError:  # no symlinks (Windows without developer mode): the hub then keeps the file there
                shutil.copyfile(blob, pointer)
        if revision != meta.commit_hash:
            (repo_dir / "refs").mkdir(exist_ok=True)
            (repo_dir / "refs" / revision).write_text(meta.commit_hash)
    tracker.finish_file(meta.size or 0)


def hub_lock_path(repo_dir: Path, etag: str) -> Path:
    """The lock file ``huggingface_hub`` takes while it writes a blob: ``<cache>/.locks/<repo folder>/<etag>.lock``
    (``file_download._hf_hub_download_to_cache_dir``), so the two never write the same blob at once."""
    return repo_dir.parent / ".locks" / repo_dir.name / f"{etag}.lock"


def _network_error(repo_id: str, exc: Exception) -> MegaPortraitError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403, 404):
        return MegaPortraitError(f"{repo_id} could not be downloaded (HTTP {status}): check the repo id, or log in "
                                 "with huggingface-cli for a gated model.")
    return NetworkError(f"No connection to the Hugging Face Hub, so {repo_id} was not downloaded ({text}). Check the "
                        "network, or install the model from an offline model pack.")


class _Tracker:
    """Adds up bytes across files and turns them into speed and ETA reports; a cancellation point per chunk.

    ``done`` counts resumed bytes (they are on disk), ``speed`` only bytes fetched in this session.
    """

    def __init__(self, total: int, on_progress: Callable[[DownloadProgress], None] | None,
                 cancel: CancelToken) -> None:
        self.total, self.on_progress, self.cancel = total, on_progress, cancel
        self.done_files = 0  # bytes of finished files
        self.current = 0  # bytes of the current file, resumed bytes included
        self.fetched = 0  # bytes actually fetched in this session (speed ignores resumed ones)
        self.start = time.monotonic()
        self.file = ""

    def add(self, n: int) -> None:
        self.current += n
        self.fetched += max(n, 0)
        self.report()
        # After the chunk is on disk: a cancelled download keeps everything it fetched.
        self.cancel.check()

    def finish_file(self, size: int) -> None:
        self.done_files += size
        self.current = 0
        self.report()

    def report(self) -> None:
        if self.on_progress is None:
            return
        elapsed = max(time.monotonic() - self.start, 1e-6)
        speed = self.fetched / elapsed
        done = min(self.done_files + self.current, self.total)
        eta = (self.total - done) / speed if speed > 0 else None
        self.on_progress(DownloadProgress(self.file, done, self.total, speed, eta))
