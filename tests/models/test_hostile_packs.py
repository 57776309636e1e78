"""Model packs and model files that are broken or hostile: install is all-or-nothing whatever the models folder
holds, a .safetensors counts only when its whole header is sound, and ``models list``/``set`` survive anything
on disk with one clear line."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest

from megaportrait_desktop.cli import main
from megaportrait_desktop.core import installed, model_settings
from megaportrait_desktop.core.modelstore import manager, packs
from megaportrait_desktop.core.modelstore.packs import PackError
from megaportrait_desktop.core.paths import models_dir

from .conftest import tree

#: Headers that parse as JSON but are no safetensors header (the first three made `models list` exit 3).
BAD_HEADERS = {
    "entry_is_a_number": {"w": 5},
    "no_data_offsets": {"w": {"dtype": "F32", "shape": [1]}},
    "offsets_are_text": {"w": {"dtype": "F32", "shape": [1], "data_offsets": "ab"}},
    "offsets_past_the_end": {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}},
    "size_not_shape": {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}},
    "gap": {"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
    "unknown_dtype": {"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}},
    "header_is_a_list": [1, 2],
}


def _safetensors(header, data: bytes = b"\0" * 4) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _copy(pack: Path, tmp_path: Path) -> Path:
    out = tmp_path / "pack"
    shutil.copytree(pack, out)
    return out


def _set_file(pack: Path, role: str, payload: bytes) -> str:
    """Replace the first .safetensors of ``role`` with ``payload`` (its manifest entry made to match)."""
    data = json.loads((pack / "manifest.json").read_text())
    entry = next(m for m in data["models"] if m["role"] == role)
    f = next(f for f in entry["files"] if f["path"].endswith(".safetensors"))
    (pack / f["path"]).write_bytes(payload)
    f["size"], f["sha256"] = len(payload), hashlib.sha256(payload).hexdigest()
    (pack / "manifest.json").write_text(json.dumps(data))
    return f["path"]


def _unchanged_after(pack: Path, match: str) -> None:
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    before = tree(root)
    with pytest.raises(PackError, match=match):
        packs.install_pack(pack)
    assert tree(root) == before
    assert not [p for p in root.rglob(".incoming-*")]


def test_safetensors_rules_agree_with_the_library(tmp_path) -> None:
    """The header check (which also runs on a zip's stream) accepts and refuses what safetensors itself does."""
    from safetensors import safe_open

    from megaportrait_desktop.core.modelstore import safetensors_header

    cases = {name: _safetensors(h) for name, h in BAD_HEADERS.items()}
    cases["good"] = _safetensors({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                                  "__metadata__": {"format": "pt"}})
    cases["truncated"] = cases["good"][:-1]
    for name, payload in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(payload)
        try:
            with safe_open(str(path), "numpy"):
                library_ok = True
        except Exception:  # noqa: BLE001 - the library's own refusal, any kind
            library_ok = False
        assert (safetensors_header.file_problem(path) is None) == library_ok, name
        assert library_ok == (name == "good"), name


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_a_damaged_safetensors_header_is_refused_by_install(tiny_pack, tmp_path, name) -> None:
    pack = _copy(tiny_pack, tmp_path)
    _set_file(pack, "light_controlnet", _safetensors(BAD_HEADERS[name]))
    _unchanged_after(pack, "not a whole safetensors file")


@pytest.mark.parametrize("name", ["entry_is_a_number", "no_data_offsets", "offsets_are_text"])
def test_models_list_and_set_survive_a_damaged_model_file(raw_tiny_models, tmp_path, name, capsys) -> None:
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(_safetensors(BAD_HEADERS[name]))
    # Chosen before the check existed (by hand, or by an older version): the list still shows every role.
    chosen = model_settings.ModelSettings().with_model("base", model_settings.ModelSpec(str(damaged)))
    model_settings.save_settings(chosen)
    assert main(["models", "list", "--json"]) == 0
    states = {s["role"]: s for s in json.loads(capsys.readouterr().out)}
    assert len(states) == len(manager.MANAGED_ROLES) and states["base"]["state"] == "damaged"
    # `models set` refuses it and leaves the settings as they were.
    good = raw_tiny_models["single"]["base"]
    assert main(["models", "set", "base", str(good)]) == 0
    before = model_settings.settings_path().read_bytes()
    assert main(["models", "set", "base", str(damaged)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "not changed" in err
    assert model_settings.settings_path().read_bytes() == before


@pytest.mark.parametrize("settings", [
    '{"models": {"base": {"source": 5}}}', '{"models": []}', "[1, 2]", '{"accepted_licences": 5}',
    '{"offline": "no"}', '{"device": ["cuda"]}', "\u00ff\u00fe not json", "[" * 100_000,
])
def test_models_list_survives_any_settings_file(settings, capsys) -> None:
    path = model_settings.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings, encoding="latin-1")
    assert main(["models", "list", "--json"]) == 0
    states = json.loads(capsys.readouterr().out)
    assert len(states) == len(manager.MANAGED_ROLES)
    assert all("settings" in s["message"] for s in states)


@pytest.mark.parametrize("record", ['[]', '{"models": 5}', '{"models": [{"path": ["x"], "role": "base"}]}',
                                    '{"models": [{"path": "/etc", "role": "base", "files": []}]}',
                                    '{"models": [{"path": "base/x", "role": "base", "licence": [1]}]}'])
def test_models_list_survives_any_install_record(tiny_pack, record, capsys) -> None:
    packs.install_pack(tiny_pack)
    installed.registry_path().write_text(record)
    assert main(["models", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(manager.MANAGED_ROLES)


def test_a_pack_file_where_the_models_folder_has_a_folder_installs_nothing(tiny_pack, capsys) -> None:
    manifest = packs.read_manifest(tiny_pack)
    last = manifest.models[-1].files[-1]
    root = models_dir()
    (root / last.path).mkdir(parents=True)  # a folder where the pack's last file goes
    (root / last.path / "mine.txt").write_text("the user's")
    before = tree(root)
    assert main(["models", "install-pack", str(tiny_pack)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folder" in err[0], err
    assert tree(root) == before and not installed.registry_path().exists()


def test_a_pack_folder_where_the_models_folder_has_a_file_installs_nothing(tiny_pack) -> None:
    first = packs.read_manifest(tiny_pack).models[0].files[0]
    root = models_dir()
    parent = root / Path(first.path).parent
    parent.parent.mkdir(parents=True, exist_ok=True)
    parent.write_text("a file where the pack needs a folder")
    before = tree(root)
    with pytest.raises(PackError, match="is a file"):
        packs.install_pack(tiny_pack)
    assert tree(root) == before


def test_an_install_that_fails_at_its_record_puts_everything_back(tiny_pack) -> None:
    """The files are in place when installed.json cannot be written (here: a folder in its place)."""
    packs.install_pack(tiny_pack)
    root = models_dir()
    light = next(m for m in packs.read_manifest(tiny_pack).models if m.role == "light_controlnet")
    weights = root / next(f.path for f in light.files if f.path.endswith(".safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\1")  # changed in place: reinstalling replaces it
    record = installed.registry_path()
    record.unlink()
    record.mkdir()
    before = tree(root)
    with pytest.raises(PackError):
        packs.install_pack(tiny_pack)
    assert tree(root) == before  # the changed file is back as it was, nothing new was added
    assert not [p for p in root.iterdir() if p.name.startswith(".incoming")]


@pytest.mark.parametrize("change, match", [
    (lambda d: d["models"][0].update(licence=["mit"]), "licence"),
    (lambda d: d["models"][0]["files"][0].update(size=float("inf")), "not a byte count"),
    (lambda d: d["models"][0]["files"][0].update(size="12"), "not a byte count"),
    (lambda d: d["models"][0]["files"][0].update(path=["a"]), "not text"),
    (lambda d: d["models"][0].update(files={"a": 1}), "malformed"),
    (lambda d: d.update(models=[5]), "malformed"),
    (lambda d: d["models"][0].update(path="."), "could escape"),
])
def test_odd_manifests_are_one_line_and_exit_2(tiny_pack, tmp_path, change, match, capsys) -> None:
    pack = _copy(tiny_pack, tmp_path)
    data = json.loads((pack / "manifest.json").read_text())
    change(data)
    text = json.dumps(data).replace("Infinity", "1e400")  # what a hand-edited manifest would say
    (pack / "manifest.json").write_text(text)
    before = tree(models_dir())
    assert main(["models", "install-pack", str(pack)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "unexpected" not in err and match in err, err
    assert tree(models_dir()) == before


def test_a_deeply_nested_manifest_is_one_line_and_exit_2(tiny_pack, tmp_path, capsys) -> None:
    pack = _copy(tiny_pack, tmp_path)
    (pack / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["models", "install-pack", str(pack)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "nested too deeply" in err
