"""Export presets on a real run: what a delivered file carries (and does not), its size, sharpening,
colour profile and name; the archive preset keeps the provenance; several outputs at once."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageCms

from megaportrait_desktop.core.delivery import is_srgb
from megaportrait_desktop.core.imaging import load_image
from megaportrait_desktop.core.pipeline import run
from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project import Project, ProjectError, import_identity_photos, import_references
from megaportrait_desktop.project.exchange import export_output, read_embedded_provenance
from megaportrait_desktop.project.export_presets import (
    BUILT_IN,
    ExportPreset,
    export_with_preset,
    file_name,
    preset_named,
    presets_from_json,
    presets_to_json,
)
from tests.icc_profiles import adobe_rgb_profile

CLIENT = "Grace Brewster Hopper"
DELIVERY, WEB, SOCIAL, PRINT, MASTER, ARCHIVE = BUILT_IN


@pytest.fixture(scope="module")
def studio(tmp_path_factory, photo_files, astronaut):
    """A project with two outputs of a run on a camera JPEG in Adobe RGB with a location in its EXIF."""
    root = tmp_path_factory.mktemp("studio")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x8298] = "Canon", "EOS R5", "(c) Studio North"  # Make, Model, Copyright
    exif[0x8825] = {1: "N", 2: (59.0, 54.0, 30.0), 3: "E", 4: (10.0, 45.0, 10.0)}  # GPS: where it was shot
    reference = root / "camera.jpg"
    Image.fromarray(astronaut).save(reference, quality=95, exif=exif.tobytes(), icc_profile=adobe_rgb_profile())
    project = Project.create(root / "project", name="Hopper shoot")
    identity = project.create_identity(CLIENT)
    import_identity_photos(project, identity, sorted(photo_files["identity"].iterdir()))
    (ref,) = import_references(project, [reference])
    photos = project.identity_photos(identity)
    request = RunRequest(identity=tuple(str(project.path_of(p.path)) for p in photos),
                         reference=str(project.path_of(project.reference(ref.item_id).path)))
    result = run(request)
    ids = [project.record_run(result, identity, ref.item_id) for _ in range(2)]
    yield project, ids
    project.close()


def test_a_delivery_jpeg_carries_no_client_name_prompt_or_project_paths(tmp_path, studio) -> None:
    project, (first, _) = studio
    (path,) = export_with_preset(project, [first], tmp_path, DELIVERY)
    raw = path.read_bytes()
    for secret in (CLIENT.encode(), b"megaportrait", b"MegaPortrait", b"objects/", b"a photo of", b"provenance"):
        assert secret not in raw, secret
    with pytest.raises(ProjectError, match="no MegaPortrait provenance"):
        read_embedded_provenance(path)
    exif = Image.open(path).getexif()
    assert exif.get(0x010F) == "Canon" and exif.get(0x8298) == "(c) Studio North"  # the camera's EXIF stays
    assert not exif.get_ifd(0x8825)  # but never where the reference was shot
    # The client's name is in the file name only because the delivery goes to the client.
    assert path.name == f"{CLIENT}_camera_{first}.jpg"
    # The project still knows everything about the output.
    assert project.output(first).identity_name == CLIENT


def test_the_old_behaviour_and_the_archive_preset_keep_the_provenance(tmp_path, studio) -> None:
    project, (first, _) = studio
    plain = export_output(project, first, tmp_path / "plain.png")  # no options: as before this change
    assert read_embedded_provenance(plain)["identity"] == CLIENT
    (archived,) = export_with_preset(project, [first], tmp_path / "archive", ARCHIVE)
    info = read_embedded_provenance(archived)
    assert info["identity"] == CLIENT and info["output_id"] == first
    assert archived.name == f"Hopper shoot_{first}.png"
    assert not is_srgb(load_image(archived).icc_profile)  # the archive keeps the camera's Adobe RGB


def test_web_preset_resizes_sharpens_converts_to_srgb_and_names_without_the_client(tmp_path, studio) -> None:
    project, (first, second) = studio
    full = load_image(project.path_of(project.output(first).final_path))
    paths = export_with_preset(project, [first, second], tmp_path, replace(WEB, long_edge=300))
    assert [p.name for p in paths] == [f"portrait_{_date(project, first)}_001.jpg",
                                       f"portrait_{_date(project, second)}_002.jpg"]
    raw = paths[0].read_bytes()
    assert CLIENT.encode() not in raw and b"Canon" not in raw  # the web preset drops the EXIF altogether
    exported = load_image(paths[0])
    assert max(exported.width, exported.height) == 300
    assert exported.width / exported.height == pytest.approx(full.width / full.height, abs=0.01)
    assert is_srgb(exported.icc_profile)
    # The pixels were converted from Adobe RGB: the same resize without conversion differs, and a
    # saturated red becomes redder in sRGB (Adobe RGB's red primary lies outside sRGB's).
    unconverted = load_image(export_with_preset(project, [first], tmp_path / "raw",
                                                replace(WEB, long_edge=300, srgb=False, sharpen="none"))[0])
    converted = load_image(export_with_preset(project, [first], tmp_path / "conv",
                                              replace(WEB, long_edge=300, sharpen="none"))[0])
    a, b = unconverted.pixels.astype(int), converted.pixels.astype(int)
    reddish = (a[..., 0] > a[..., 1] + 60) & (a[..., 0] < 200)
    assert reddish.sum() > 100 and (b[..., 0][reddish] - a[..., 0][reddish]).mean() > 3
    # Output sharpening adds local contrast (the high frequencies), not a shift of the whole image.
    sharp = exported.pixels.astype(float)
    assert _detail(sharp) > 1.1 * _detail(b.astype(float))
    assert abs(sharp.mean() - b.mean()) < 1.5


def test_jpeg_quality_and_full_size_master(tmp_path, studio) -> None:
    project, (first, _) = studio
    small = export_with_preset(project, [first], tmp_path / "q50", replace(DELIVERY, quality=50))[0]
    large = export_with_preset(project, [first], tmp_path / "q100", replace(DELIVERY, quality=100))[0]
    assert small.stat().st_size < 0.6 * large.stat().st_size
    (master,) = export_with_preset(project, [first], tmp_path / "master", MASTER)
    picture = load_image(master)
    assert master.suffix == ".tif" and picture.bit_depth == 16 and picture.width == 512
    assert b"MegaPortrait" not in master.read_bytes()


def test_several_outputs_at_once_never_overwrite(tmp_path, studio) -> None:
    project, ids = studio
    same_name = replace(DELIVERY, pattern="{client}")
    first = export_with_preset(project, ids, tmp_path, same_name)
    again = export_with_preset(project, ids[:1], tmp_path, same_name)
    names = sorted(p.name for p in (*first, *again))
    assert names == sorted([f"{CLIENT}.jpg", f"{CLIENT}-2.jpg", f"{CLIENT}-3.jpg"])
    done: list[float] = []
    export_with_preset(project, ids, tmp_path / "progress", DELIVERY,
                       on_progress=lambda d, total, what: done.append(d) if total == 2 else None)
    # Within each file as it is read, encoded and written; never backwards; both files in the end.
    assert done == sorted(done) and done[0] == 0.0 and done[-1] == 2.0 and any(0 < d < 1 for d in done)


def test_presets_are_checked_and_round_trip(tmp_path) -> None:
    for preset in BUILT_IN:
        assert ExportPreset.from_json(json.loads(json.dumps(preset.to_json()))) == preset
        assert preset.include_provenance == (preset is ARCHIVE)  # provenance only where it is asked for
    mine = replace(WEB, name="Agency", long_edge=1600)
    assert presets_from_json(presets_to_json((mine,))) == (mine,)
    assert presets_from_json('[{"name": "broken", "format": "gif"}, 7]') == ()  # damaged entries are dropped
    for bad, message in ((replace(WEB, quality=0), "quality"), (replace(WEB, format="gif"), "format"),
                         (replace(MASTER, srgb=True), "TIFF"), (replace(WEB, pattern="{client.__class__}"), "token"),
                         (replace(WEB, sharpen="canvas"), "Sharpening")):
        with pytest.raises(ProjectError, match=message):
            bad.check()
    assert preset_named(SOCIAL.name) == SOCIAL
    values = {"client": "A/B: C", "reference": "r", "id": 3, "n": "001", "date": "2025-01-01", "rating": 5,
              "score": "0.61", "project": "p"}
    assert file_name("{client} {rating}★ {score}", values) == "A_B_ C 5★ 0.61"


def test_project_export_on_the_command_line_leaves_provenance_out_unless_asked(tmp_path, studio, capsys) -> None:
    from megaportrait_desktop.cli import main

    project, (first, _) = studio
    root = project.root  # export is a reading command: it works beside the open project
    assert main(["project", "export", str(root), str(tmp_path / "plain.jpg"), "--output", str(first)]) == 0
    assert CLIENT.encode() not in (tmp_path / "plain.jpg").read_bytes()
    assert main(["project", "export", str(root), str(tmp_path / "kept.png"), "--output", str(first),
                 "--provenance"]) == 0
    assert read_embedded_provenance(tmp_path / "kept.png")["identity"] == CLIENT
    assert main(["project", "export", str(root), str(tmp_path / "web.jpg"), "--output", str(first),
                 "--preset", SOCIAL.name]) == 0
    assert max(Image.open(tmp_path / "web.jpg").size) == 512  # 512 px: below 1080, never enlarged
    assert main(["project", "export", str(root), str(tmp_path / "x.jpg"), "--output", str(first),
                 "--preset", "Nope"]) == 2
    assert "No export preset named 'Nope'" in capsys.readouterr().err


def _date(project: Project, output_id: int) -> str:
    import datetime as dt

    return dt.date.fromtimestamp(project.output(output_id).created).isoformat()


def _detail(pixels: np.ndarray) -> float:
    grey = pixels.mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())


def test_srgb_conversion_keeps_an_srgb_file_as_it_is(astronaut) -> None:
    from megaportrait_desktop.core.delivery import convert_to_srgb
    from megaportrait_desktop.core.imaging import Picture

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for icc in (None, srgb):
        out = convert_to_srgb(Picture(astronaut, icc_profile=icc))
        np.testing.assert_array_equal(out.pixels, astronaut)
        assert is_srgb(out.icc_profile)
    deep = Picture((astronaut.astype(np.uint16) * 257), icc_profile=adobe_rgb_profile())
    with pytest.raises(Exception, match="16-bit"):
        convert_to_srgb(deep)
