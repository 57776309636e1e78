"""Writers beside repair, garbage collection and each other, as threads of one process (the way the app runs
them: a worker records while History deletes, an import runs while the user repairs). Cross-process writers
are kept apart by the project's own lock; inside one process these must hold without it."""

from __future__ import annotations

import argparse
import hashlib
import threading
import time

import numpy as np
import pytest

from megaportrait_desktop.project import Project, import_references, repair, verify
from megaportrait_desktop.project.commands import _import_identity
from megaportrait_desktop.project.files import FileStore


def _run_together(*targets, timeout: float = 240.0) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(target):
        def run():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


@pytest.mark.slow
def test_repair_during_recording_and_importing_loses_nothing(tmp_path, photo_files) -> None:
    project = Project.create(tmp_path / "busy")
    done = threading.Event()
    recorded: list[int] = []
    imported: list[int] = []
    repairs = [0]

    def writer() -> None:
        try:
            rng = np.random.default_rng(0)
            for i in range(120):
                image = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
                recorded.append(project.record_output(request={"i": i}, engine="classic", final=image,
                                                      stages={"A": image[:20], "B": image[20:]}))
            # An import: the photo file, its row, then its automatic mask (three writes).
            results = import_references(project, [photo_files["reference"]])
            imported.extend(r.item_id for r in results if r.status == "imported")
        finally:
            done.set()

    def repairer() -> None:
        while not done.is_set():
            repair(project)
            repairs[0] += 1
            time.sleep(0.005)  # a writer gets its turn between repairs

    assert _run_together(writer, repairer) == []
    assert repairs[0] > 5 and len(recorded) == 120 and len(imported) == 1
    project.close()
    project = Project.open(tmp_path / "busy")
    report = verify(project, deep=True)
    assert not report.missing_files and not report.broken_outputs and not report.damaged_files, report
    for output_id in recorded:
        out = project.output(output_id)
        assert project.path_of(out.final_path).is_file() and len(out.stages) == 2
        assert all(project.path_of(p).is_file() for p in out.stages.values())
    (mask,) = project.masks(imported[0])  # the automatic mask survived too
    assert project.path_of(mask.path).is_file()
    project.close()


def test_recording_while_history_deletes_keeps_every_recorded_file(tmp_path) -> None:
    """The worker records outputs that share their files (the same image) while History deletes others: a
    delete's garbage collection must not take a file a new output has just reused."""
    project = Project.create(tmp_path / "shared")
    image = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    done = threading.Event()
    queue: list[int] = []
    kept: list[int] = []

    def recorder() -> None:
        try:
            for i in range(200):
                output_id = project.record_output(request={"i": i}, engine="classic", final=image,
                                                  stages={"A": image})
                (kept if i % 10 == 9 else queue).append(output_id)
        finally:
            done.set()

    def deleter() -> None:
        while not done.is_set() or queue:
            if queue:
                project.delete_output(queue.pop(0))  # often the only output naming the shared files

    assert _run_together(recorder, deleter) == []
    assert len(kept) == 20
    for output_id in kept:
        out = project.output(output_id)
        assert project.path_of(out.final_path).is_file() and project.path_of(out.thumb_path).is_file()
        assert project.path_of(out.stages["A"]).is_file()
    report = verify(project)
    assert not report.missing_files and not report.broken_outputs, report
    project.close()


def test_put_survives_a_concurrent_delete_of_its_file_and_folder(tmp_path) -> None:
    """``FileStore.put`` while the same files are deleted (each delete used to take the emptied fan-out folder
    with it, between a writer's mkdir and its temporary file): never an error."""
    store = FileStore(tmp_path / "store", durable=False)
    blobs, n = [], 0
    while len(blobs) < 40:  # contents whose hashes share one fan-out folder, objects/00/
        data = f"blob {n}".encode()
        n += 1
        if hashlib.sha256(data).hexdigest().startswith("00"):
            blobs.append(data)
    paths = [store.relative_path(hashlib.sha256(b).hexdigest(), ".png") for b in blobs]
    stop = threading.Event()
    put_back = [0]

    def writer() -> None:
        try:
            for _ in range(60):
                for data, rel in zip(blobs, paths, strict=True):
                    stored = store.put(data, ".png", "stage")
                    assert stored.path == rel
                    put_back[0] += 1
        finally:
            stop.set()

    def remover() -> None:
        while not stop.is_set():
            for rel in paths:
                store.remove(rel)

    assert _run_together(writer, remover) == []
    assert put_back[0] == 60 * len(blobs)


def test_two_imports_into_one_new_identity_both_land_in_it(tmp_path) -> None:
    project = Project.create(tmp_path / "twins")

    def importers(name: str, codes: list[int]) -> list:
        barrier = threading.Barrier(4)

        def importer() -> None:
            barrier.wait()
            codes.append(_import_identity(project, argparse.Namespace(name=name, photos=[])))

        return [importer] * 4

    for round_ in range(30):
        codes: list[int] = []
        assert _run_together(*importers(f"Client {round_}", codes)) == []
        assert codes == [0, 0, 0, 0]
    assert len(project.identities()) == 30
    project.close()
