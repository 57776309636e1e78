"""The project store on real photos; every write is checked again after closing and reopening."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.core.imaging import load_image
from megaportrait_desktop.core.pipeline import run
from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project import (
    OutputQuery,
    Project,
    ProjectError,
    import_identity_photos,
    import_references,
    list_outputs,
    verify,
)
from megaportrait_desktop.project.database import SCHEMA_VERSION
from megaportrait_desktop.project.exchange import export_output, read_embedded_provenance


def reopen(project: Project) -> Project:
    root = project.root
    project.close()
    return Project.open(root)


@pytest.fixture
def project(tmp_path):
    p = Project.create(tmp_path / "studio", name="Studio")
    yield p
    p.close()


def test_create_open_and_layout(tmp_path, project) -> None:
    assert (project.root / "project.db").is_file() and project.name == "Studio"
    project = reopen(project)
    assert project.name == "Studio"
    mode = project.db.one("PRAGMA journal_mode")[0]
    assert mode == "delete" and project.db.one("PRAGMA foreign_keys")[0] == 1  # see project/database.py
    assert project.db.one("PRAGMA user_version")[0] == SCHEMA_VERSION == 3
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(project.root)
    project.close()


def test_identity_import_with_per_file_results(tmp_path, project, photo_files, astronaut) -> None:
    identity = project.create_identity("Grace Hopper", notes="navy portrait")
    project = reopen(project)
    (tmp_path / "notes.jpg").write_text("not a photo")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    files = sorted(photo_files["identity"].iterdir()) + [photo_files["grace"], tmp_path / "notes.jpg",
                                                          tmp_path / "noise.png"]
    progress = []
    results = import_identity_photos(project, identity, files, on_progress=lambda d, t, r: progress.append((d, t)))
    assert [r.status for r in results] == ["imported", "imported", "duplicate", "rejected", "rejected"]
    assert "not an image" in results[3].reason and "no face" in results[4].reason
    assert progress == [(i, 5) for i in range(1, 6)]
    project = reopen(project)
    (ident,) = project.identities()
    assert (ident.name, ident.notes, ident.photo_count, ident.training_state) == ("Grace Hopper", "navy portrait",
                                                                               2, "untrained")
    photos = project.identity_photos(identity)
    assert len(photos[0].faces) == 1 and len(photos[0].faces[0]["landmarks"]) == 478
    # The default recogniser (dlib's ResNet) installs with the app: every photo gets its 128-d descriptor.
    assert photos[0].quality["ok"] is True and photos[0].embedding.shape == (128,)
    stored = load_image(project.path_of(photos[0].path)).pixels
    assert stored.shape[:2] == (600, 512)
    assert not photos[0].path.startswith("/")  # paths inside the project are relative
    project.close()


def test_rename_delete_with_files(project, photo_files) -> None:
    identity = project.create_identity("G")
    import_identity_photos(project, identity, [photo_files["grace"]])
    project.rename_identity(identity, "Grace")
    project = reopen(project)
    assert project.identity(identity).name == "Grace"
    other = project.create_identity("Other")
    with pytest.raises(ProjectError, match="already exists"):
        project.rename_identity(other, "Grace")
    photo_path = project.path_of(project.identity_photos(identity)[0].path)
    assert photo_path.is_file()
    project.delete_identity(identity)
    project = reopen(project)
    assert [i.name for i in project.identities()] == ["Other"] and not photo_path.exists()
    assert verify(project).ok
    project.close()


def test_reference_faces_masks_and_versions(project, photo_files, grace, astronaut) -> None:
    canvas = np.full((700, 1200, 3), 230, np.uint8)
    canvas[50:650, :512] = grace
    canvas[100:612, 600:1112] = astronaut
    group = photo_files["reference"].with_name("two_people.png")
    Image.fromarray(canvas).save(group)
    results = import_references(project, [photo_files["reference"], group, photo_files["reference"]])
    assert [r.status for r in results] == ["imported", "imported", "duplicate"]
    assert [r.face_count for r in results[:2]] == [1, 2]
    project = reopen(project)
    solo, pair = project.references()
    assert (pair.face_count, pair.chosen_face) == (2, 0)
    project.choose_face(pair.id, 1)
    project = reopen(project)
    assert project.reference(pair.id).chosen_face == 1
    with pytest.raises(ProjectError, match="Face 3"):
        project.choose_face(pair.id, 2)
    (auto,) = project.masks(solo.id)
    auto_pixels = load_image(project.path_of(auto.path)).pixels[..., 0]
    assert auto.source == "auto" and auto_pixels.shape == (512, 512) and auto_pixels.max() == 255
    edited = auto_pixels.copy()
    edited[:50] = 255
    assert project.save_mask(solo.id, edited) == 1
    assert project.save_mask(solo.id, edited // 2) == 2
    project = reopen(project)
    assert [m.version for m in project.masks(solo.id)] == [0, 1, 2]
    np.testing.assert_array_equal(load_image(project.path_of(project.current_mask(solo.id).path)).pixels[..., 0],
                                  edited // 2)
    project.reset_mask(solo.id)
    project = reopen(project)
    assert project.current_mask(solo.id).source == "auto" and verify(project).ok
    project.rename_reference(solo.id, "Astronaut")
    project = reopen(project)
    assert project.reference(solo.id).name == "Astronaut"
    project.close()


def _record(project: Project, image: np.ndarray, **kwargs) -> int:
    return project.record_output(request={"engine": "classic"}, engine="classic", final=image, **kwargs)


def test_outputs_list_sort_filter_page(project, astronaut, grace) -> None:
    a = project.create_identity("A")
    b = project.create_identity("B")
    ids = []
    for i in range(25):
        image = np.roll(astronaut, i, axis=1)
        ids.append(_record(project, image, identity_id=a if i % 2 else b, identity_score=i / 25,
                           tags=("keeper",) if i % 5 == 0 else (), created=1_000_000 + i,
                           stages={"A": image[:64, :64]}))
    project.set_rating(ids[3], 5)
    project.set_favourite(ids[4], True)
    project.add_tag(ids[6], "client-pick")
    project = reopen(project)
    page = list_outputs(project, OutputQuery(page_size=10))
    assert page.total == 25 and page.pages == 3 and [o.id for o in page.items] == ids[::-1][:10]
    assert [o.id for o in list_outputs(project, OutputQuery(page=2, page_size=10)).items] == ids[::-1][20:]
    by_score = list_outputs(project, OutputQuery(sort="score", page_size=3)).items
    assert [o.identity_score for o in by_score] == [24 / 25, 23 / 25, 22 / 25]
    assert list_outputs(project, OutputQuery(sort="rating", page_size=1)).items[0].id == ids[3]
    assert list_outputs(project, OutputQuery(identity_id=a)).total == 12
    assert {o.id for o in list_outputs(project, OutputQuery(tag="keeper")).items} == {ids[i] for i in range(0, 25, 5)}
    assert [o.id for o in list_outputs(project, OutputQuery(favourite=True)).items] == [ids[4]]
    assert list_outputs(project, OutputQuery(min_score=0.8)).total == 5
    assert list_outputs(project, OutputQuery(since=1_000_010, until=1_000_015)).total == 5
    out = project.output(ids[6])
    assert out.tags == ("client-pick",) and out.identity_name == "B" and "A" in out.stages
    thumb = Image.open(project.path_of(out.thumb_path))
    assert max(thumb.size) == 256
    project.delete_output(ids[6])
    project = reopen(project)
    assert list_outputs(project).total == 24 and verify(project).ok
    with pytest.raises(ProjectError, match="does not exist"):
        project.output(ids[6])
    project.close()


def test_record_a_real_run_export_and_recall(tmp_path, project, photo_files) -> None:
    identity = project.create_identity("Grace")
    import_identity_photos(project, identity, sorted(photo_files["identity"].iterdir()))
    (ref_result,) = import_references(project, [photo_files["reference"]])
    photos = project.identity_photos(identity)
    ref = project.reference(ref_result.item_id)
    request = RunRequest(identity=tuple(str(project.path_of(p.path)) for p in photos),
                         reference=str(project.path_of(ref.path)))
    result = run(request)
    output_id = project.record_run(result, identity, ref.id, models={"engine": "classic"})
    project = reopen(project)
    out = project.output(output_id)
    assert out.request["reference"] == ref.path  # stored relative to the project
    assert RunRequest.from_dict(project.resolve_request(out.request)) == request
    np.testing.assert_array_equal(load_image(project.path_of(out.final_path)).pixels, result.final.pixels)
    assert set(out.stages) == {"reference", "A", "B", "light_map", "hf_map", "shaded", "mask", "pasted"}
    for suffix in (".png", ".jpg", ".tif"):
        path = export_output(project, output_id, tmp_path / f"export{suffix}")
        info = read_embedded_provenance(path)
        assert info["output_id"] == output_id and info["request"]["engine"] == "classic"
        assert info["identity"] == "Grace"
        again = load_image(path)
        assert again.pixels.shape == (512, 512, 3)
        assert again.bit_depth == (16 if suffix == ".tif" else 8)
    # A project moved elsewhere opens, and its relative paths still resolve.
    project.close()
    moved = shutil.move(str(project.root), str(tmp_path / "moved"))
    project = Project.open(moved)
    assert load_image(project.path_of(project.output(output_id).final_path)).width == 512
    assert verify(project, deep=True).ok
    project.close()


def test_jobs_interrupted_and_resumed(project) -> None:
    job = project.add_job("generate", {"request": {"engine": "classic"}})
    project.update_job(job, state="running", progress=0.4)
    done = project.add_job("train", {"steps": 10})
    project.update_job(done, state="done", progress=1.0)
    project = reopen(project)  # as after a crash: nobody runs the 'running' job any more
    assert [j.id for j in project.interrupted_jobs()] == [job]
    project.resume_job(job)
    project = reopen(project)
    (queued,) = project.jobs(("queued",))
    assert queued.id == job and queued.progress == 0.0 and queued.payload == {"request": {"engine": "classic"}}
    project.update_job(job, state="failed", error="out of GPU memory")
    project = reopen(project)
    assert project.jobs(("failed",))[0].error == "out of GPU memory"
    project.close()


def test_training_state_and_lora_file(project) -> None:
    identity = project.create_identity("Grace")
    project.set_training(identity, "training", progress=0.5)
    project = reopen(project)
    assert project.identity(identity).training_state == "training"
    project.set_training(identity, "trained", progress=1.0, lora=b"fake safetensors bytes")
    project.update_identity(identity, training_params={"rank": 8, "steps": 400})
    project = reopen(project)
    item = project.identity(identity)
    assert item.training_state == "trained" and item.training_params == {"rank": 8, "steps": 400}
    assert project.path_of(item.lora_path).read_bytes() == b"fake safetensors bytes"
    assert json.loads(json.dumps(item.training_params)) == {"rank": 8, "steps": 400}
    project.close()


def test_export_carries_the_references_icc_profile(tmp_path, project, astronaut) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(astronaut).save(tmp_path / "tagged.jpg", quality=95, icc_profile=icc)
    (ref,) = import_references(project, [tmp_path / "tagged.jpg"])
    output_id = project.record_output(request={"engine": "classic"}, engine="classic", final=astronaut,
                                      reference_id=ref.item_id)  # a final without a profile of its own
    project = reopen(project)
    for suffix in (".png", ".jpg", ".tif"):
        exported = load_image(export_output(project, output_id, tmp_path / f"e{suffix}"))
        assert exported.icc_profile == icc, suffix
    project.close()
