"""Packs built from the session's tiny random models, and the state of a models folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 (to show a folder is unchanged)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def fake_buffalo_l(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "det_10g.onnx").write_bytes(b"not a real detector " * 10)
    (folder / "w600k_r50.onnx").write_bytes(b"not a real recogniser " * 10)
    return folder


@pytest.fixture(scope="session")
def raw_tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Tiny random models as folders and single files, without the VAE fitting (packs never run them)."""
    from megaportrait_desktop.core.diffusion import synthetic

    root = tmp_path_factory.mktemp("raw-tiny-models")
    components = synthetic.build("tiny", seed=0, tokenizer_dir=root / "tokenizer")
    return {"folders": synthetic.save_diffusers(components, root / "folders"),
            "single": synthetic.save_single_file(components, root / "single")}


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory, raw_tiny_models) -> Path:
    """A pack folder of the tiny models: a diffusers folder per role, the base also as a single file."""
    from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec
    from megaportrait_desktop.core.modelstore.pack_builder import build_pack

    root = tmp_path_factory.mktemp("pack-source")
    fake_buffalo_l(root / "models" / "insightface" / "models" / "buffalo_l")
    tiny_models = raw_tiny_models
    folders = tiny_models["folders"]
    settings = ModelSettings(models={role: ModelSpec(str(path)) for role, path in folders.items()})
    settings = settings.with_model("base", ModelSpec(str(tiny_models["single"]["base"]), str(folders["base"])))
    out = tmp_path_factory.mktemp("packs") / "tiny-pack"
    build_pack(out, models_dir=root / "models", settings=settings)
    return out


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every socket connection attempt fails the test's assertion list: ``assert not attempts`` after the call."""
    import socket

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] or kwargs)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(self, address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(self, address))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, *a, **k))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, *a, **k))
    return attempts
