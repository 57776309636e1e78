"""Downloads: offline mode opens no socket; progress, resume and cancel against a Hub-like server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from megaportrait_desktop.core import model_settings
from megaportrait_desktop.core.errors import Cancelled, MegaPortraitError
from megaportrait_desktop.core.modelstore import downloads, manager
from megaportrait_desktop.core.progress import CancelToken

REPO = "lllyasviel/control_v11f1e_sd15_tile"
COMMIT = "0" * 39 + "1"


class _Hub:
    """The Hub endpoint a download uses: HEAD (metadata) and ranged GET of ``/<repo>/resolve/<rev>/<file>``."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _file(self) -> bytes | None:
                prefix = f"/{REPO}/resolve/"
                if not self.path.startswith(prefix):
                    return None
                name = self.path[len(prefix):].split("/", 1)[1]
                return hub.files.get(name)

            def _headers(self, data: bytes, status: int, start: int = 0) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub.requests.append(("HEAD", self.path, None))
                data = self._file()
                if data is None:
                    self.send_error(404)
                    return
                self._headers(data, 200)

            def do_GET(self) -> None:  # noqa: N802
                ranged = self.headers.get("Range")
                hub.requests.append(("GET", self.path, ranged))
                data = self._file()
                if data is None:
                    self.send_error(404)
                    return
                start = int(ranged.split("=")[1].split("-")[0]) if ranged else 0
                self._headers(data, 206 if ranged else 200, start)
                try:
                    for i in range(start, len(data), 1 << 16):
                        self.wfile.write(data[i:i + (1 << 16)])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client cancelled

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(raw_tiny_models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    folder = raw_tiny_models["folders"]["light_controlnet"]
    server = _Hub({name: (folder / name).read_bytes() for name in downloads.CONTROLNET_FILES})
    # The test process runs with the hub's offline switch on; these tests are the app's own download path.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    yield server
    server.close()


def _download(hub, **kwargs) -> Path:
    return downloads.download_role("light_controlnet", REPO, endpoint=hub.url, **kwargs)


def test_download_reports_bytes_speed_and_eta_then_resolves_from_the_cache(hub, tmp_path) -> None:
    reports: list[downloads.DownloadProgress] = []
    snapshot = _download(hub, on_progress=reports.append)
    total = sum(len(d) for d in hub.files.values())
    assert snapshot.is_relative_to(tmp_path / "hub") and snapshot.name == COMMIT
    assert reports[-1].done == reports[-1].total == total
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert all(r.speed > 0 for r in reports) and reports[-1].eta == 0
    assert any(r.eta and r.eta > 0 for r in reports[:-1])
    # The role now uses the cached repo, and it loads.
    assert model_settings.load_settings().models["light_controlnet"].source == REPO
    state = manager.role_state("light_controlnet")
    assert state.state == "installed" and state.in_hf_cache and state.path == snapshot
    # Asked again: everything is in the cache, so not one request is made.
    count = len(hub.requests)
    assert _download(hub) == snapshot and len(hub.requests) == count


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes_it(hub, tmp_path) -> None:
    token = CancelToken()
    seen: list[int] = []

    def cancel_midway(report: downloads.DownloadProgress) -> None:
        seen.append(report.done)
        if report.file.endswith(".safetensors") and len(seen) > 3:
            token.cancel()

    with pytest.raises(Cancelled):
        _download(hub, on_progress=cancel_midway, cancel=token)
    partial = list((tmp_path / "hub").rglob("*.incomplete"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(hub.files[downloads.CONTROLNET_FILES[1]])
    assert "light_controlnet" not in model_settings.load_settings().models
    resumed_from = partial[0].stat().st_size

    reports: list[downloads.DownloadProgress] = []
    snapshot = _download(hub, on_progress=reports.append)
    ranged = [r for r in hub.requests if r[0] == "GET" and r[2]]
    assert ranged and ranged[-1][2] == f"bytes={resumed_from}-"
    weights = snapshot / downloads.CONTROLNET_FILES[1]
    assert weights.read_bytes() == hub.files[downloads.CONTROLNET_FILES[1]]
    assert not list((tmp_path / "hub").rglob("*.incomplete"))
    assert reports[-1].done == reports[-1].total


def test_offline_mode_refuses_a_download_without_opening_a_socket(no_network) -> None:
    model_settings.save_settings(model_settings.ModelSettings(offline=True))
    with pytest.raises(downloads.OfflineError, match="Offline mode is on"):
        downloads.download_role("base")
    with pytest.raises(downloads.OfflineError):
        downloads.download_role("light_controlnet", REPO, endpoint="http://127.0.0.1:9")
    assert no_network == []


def test_no_network_gives_a_clear_message(hub) -> None:
    hub.close()
    with pytest.raises(downloads.NetworkError, match="No connection to the Hugging Face Hub.*offline model pack"):
        _download(hub)


def test_not_enough_disk_space_is_refused_before_downloading(hub, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(MegaPortraitError, match="Not enough free disk space"):
        _download(hub)
    assert not [r for r in hub.requests if r[0] == "GET"]


def test_only_the_diffusion_roles_download() -> None:
    with pytest.raises(MegaPortraitError, match="come in a model pack"):
        downloads.download_role("insightface")


def test_a_download_waits_for_the_lock_huggingface_hub_itself_takes(hub, tmp_path) -> None:
    """Another tool (huggingface_hub's own download) fetching the same file holds the hub's lock on its blob:
    our download waits for it instead of writing the same blob at the same time."""
    import os
    import time

    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import WeakFileLock

    first = downloads.CONTROLNET_FILES[0]
    etag = hashlib.sha256(hub.files[first]).hexdigest()
    cache = tmp_path / "hub"
    # Built the way huggingface_hub builds it (file_download._hf_hub_download_to_cache_dir).
    lock_path = os.path.join(cache, ".locks", repo_folder_name(repo_id=REPO, repo_type="model"), f"{etag}.lock")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    result: list = []
    with WeakFileLock(lock_path):
        worker = threading.Thread(target=lambda: result.append(_download(hub)))
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and not result  # waiting on the other tool's lock
        assert not list(cache.rglob(f"blobs/{etag}"))
    worker.join(60)
    assert result and (result[0] / first).read_bytes() == hub.files[first]
