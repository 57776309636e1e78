"""Offline model packs: build, install, verify, reinstall, and every refusal leaves the models folder as it was."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from megaportrait_desktop.core import installed, model_settings
from megaportrait_desktop.core.diffusion import models
from megaportrait_desktop.core.modelstore import pack_builder, packs
from megaportrait_desktop.core.modelstore.packs import PackError
from megaportrait_desktop.core.paths import models_dir

from .conftest import tree


def _copy(pack: Path, tmp_path: Path) -> Path:
    out = tmp_path / "pack"
    shutil.copytree(pack, out)
    return out


def _edit_manifest(pack: Path, change) -> None:
    data = json.loads((pack / "manifest.json").read_text())
    change(data)
    (pack / "manifest.json").write_text(json.dumps(data))


def _zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return out


def test_pack_manifest_lists_every_role_with_hashes_and_licences(tiny_pack) -> None:
    manifest = packs.read_manifest(tiny_pack)
    roles = {m.role for m in manifest.models if m.kind != "config"}
    assert roles == {*model_settings.ROLES, "insightface"}
    base = next(m for m in manifest.models if m.role == "base" and m.kind == "single_file")
    assert base.config and base.files[0].path.endswith(".safetensors")
    insight = next(m for m in manifest.models if m.role == "insightface")
    assert insight.path == "insightface/models/buffalo_l" and insight.licence.requires_acceptance
    assert all(len(f.sha256) == 64 for m in manifest.models for f in m.files)
    # A config entry carries no weights.
    config = next(m for m in manifest.models if m.kind == "config")
    assert not any(f.path.endswith(".safetensors") for f in config.files)
    assert packs.verify_pack(tiny_pack) == manifest


def test_install_verify_and_reinstall_without_duplicates(tiny_pack) -> None:
    report = packs.install_pack(tiny_pack)
    root = models_dir()
    assert report.copied == sum(len(m.files) for m in report.models) and report.skipped == 0
    assert set(report.roles_set) == set(model_settings.ROLES)
    # The installed models resolve and are the ones chosen for each role.
    settings = model_settings.load_settings()
    resolved = models.resolve_all(settings)
    assert resolved["base"].kind == "single_file" and resolved["base"].path.is_relative_to(root)
    assert (root / "insightface/models/buffalo_l/det_10g.onnx").is_file()
    assert set(installed.load_registry()) == {m.path for m in report.models}
    before = tree(root)
    again = packs.install_pack(tiny_pack)
    assert again.copied == 0 and again.skipped == report.copied and again.roles_set == []
    assert tree(root) == before  # same files, no copies, no leftovers
    assert not [p for p in root.iterdir() if p.name.startswith(".incoming")]


def test_install_from_a_zip_and_build_a_pack_from_what_is_installed(tiny_pack, tmp_path) -> None:
    archive = _zip(tiny_pack, tmp_path / "pack.zip")
    packs.install_pack(archive)
    rebuilt = pack_builder.build_pack(tmp_path / "again.zip")
    assert {f.sha256 for m in rebuilt.models for f in m.files} == {
        f.sha256 for m in packs.read_manifest(tiny_pack).models for f in m.files}
    assert packs.verify_pack(tmp_path / "again.zip").models == rebuilt.models


def test_a_changed_file_in_the_models_folder_is_replaced_on_reinstall(tiny_pack) -> None:
    packs.install_pack(tiny_pack)
    target = models_dir() / "insightface/models/buffalo_l/det_10g.onnx"
    original = target.read_bytes()
    target.write_bytes(b"x" * len(original))
    report = packs.install_pack(tiny_pack)
    assert report.copied == 1 and target.read_bytes() == original


def _refused(pack: Path, match: str) -> None:
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    (root / "keep.txt").write_text("the user's own file")
    before = tree(root)
    with pytest.raises(PackError, match=match):
        packs.install_pack(pack)
    assert tree(root) == before
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt"]
    assert model_settings.load_settings() == model_settings.ModelSettings()


def test_hash_mismatch_is_refused_and_nothing_is_installed(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    manifest = packs.read_manifest(pack)
    # Damage the last file so every earlier one was already staged when the mismatch is found.
    last = manifest.models[-1].files[-1]
    data = bytearray((pack / last.path).read_bytes())
    data[-1] ^= 0xFF
    (pack / last.path).write_bytes(bytes(data))
    _refused(pack, "does not match its SHA-256")


def test_a_truncated_or_missing_file_is_refused(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    first = packs.read_manifest(pack).models[0].files[0]
    (pack / first.path).write_bytes((pack / first.path).read_bytes()[:-10])
    _refused(pack, "has .* bytes, its manifest says")
    (pack / first.path).unlink()
    _refused(pack, "is missing")


def test_a_pickle_file_is_refused(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    weights = pack / "light_controlnet" / "light_controlnet" / "model.ckpt"
    weights.write_bytes(b"\x80\x04pickled")

    def add(data):
        entry = next(m for m in data["models"] if m["role"] == "light_controlnet")
        entry["files"].append({"path": entry["path"] + "/model.ckpt", "size": 9, "sha256": "0" * 64})

    _edit_manifest(pack, add)
    _refused(pack, "pickle file.*model.ckpt")


def test_an_unlisted_pickle_in_the_pack_is_refused(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    (pack / "base" / "leftover.bin").write_bytes(b"\x80\x04pickled")
    _refused(pack, "pickle file.*leftover.bin")
    _refused(_zip(pack, tmp_path / "pack.zip"), "pickle file.*leftover.bin")


def test_a_pickle_named_safetensors_is_refused(tiny_pack, tmp_path) -> None:
    import hashlib

    pack = _copy(tiny_pack, tmp_path)
    payload = b"\x80\x04\x95pickle bytes pretending to be safetensors"

    def swap(data):
        entry = next(m for m in data["models"] if m["role"] == "inpaint_controlnet")
        f = next(f for f in entry["files"] if f["path"].endswith(".safetensors"))
        (pack / f["path"]).write_bytes(payload)
        f["size"], f["sha256"] = len(payload), hashlib.sha256(payload).hexdigest()

    _edit_manifest(pack, swap)
    _refused(pack, "not a safetensors file")


@pytest.mark.parametrize("bad", ["../outside/evil.json", "/etc/evil.json", "base/../../evil.json",
                                 "C:/evil.json", "base\\..\\evil.json"])
def test_a_path_that_escapes_the_models_folder_is_refused(tiny_pack, tmp_path, bad) -> None:
    pack = _copy(tiny_pack, tmp_path)

    def escape(data):
        data["models"][0]["files"][0]["path"] = bad

    _edit_manifest(pack, escape)
    _refused(pack, "could escape the models folder|outside its model's folder")
    assert not (tmp_path / "outside").exists()


def test_a_linked_file_is_refused(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    first = packs.read_manifest(pack).models[0].files[0]
    secret = tmp_path / "secret.json"
    secret.write_bytes((pack / first.path).read_bytes())
    (pack / first.path).unlink()
    (pack / first.path).symlink_to(secret)
    _refused(pack, "is a link")


def test_a_zip_with_an_escaping_member_is_refused(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)

    def escape(data):
        data["models"][0]["files"][0]["path"] = "../../evil.json"

    _edit_manifest(pack, escape)
    _refused(_zip(pack, tmp_path / "evil.zip"), "could escape the models folder")


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(version=2), "manifest version 2 is unknown"),
    (lambda d: d.pop("version"), "manifest version None is unknown"),
    (lambda d: d.update(format="other"), "not a MegaPortrait model pack manifest"),
    (lambda d: d["models"][0].update(role="vae"), "unknown role 'vae'"),
    (lambda d: d["models"][0].pop("files"), "malformed"),
])
def test_an_unknown_manifest_version_or_malformed_manifest_is_refused(tiny_pack, tmp_path, change, match) -> None:
    pack = _copy(tiny_pack, tmp_path)
    _edit_manifest(pack, change)
    _refused(pack, match)


def test_a_folder_without_manifest_and_a_cancelled_install_leave_nothing(tiny_pack, tmp_path) -> None:
    from megaportrait_desktop.core.errors import Cancelled
    from megaportrait_desktop.core.progress import CancelToken, Reporter

    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(empty, "has no manifest.json")
    token = CancelToken()
    seen = []

    def on_progress(p):
        seen.append(p.step)
        if len(seen) == 3:
            token.cancel()

    root = models_dir()
    with pytest.raises(Cancelled):
        packs.install_pack(tiny_pack, reporter=Reporter(on_progress, token))
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt"]
