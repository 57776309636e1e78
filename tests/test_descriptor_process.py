"""dlib's ResNet in the app's helper process: the same descriptors, and a dead helper costs nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest

from megaportrait_desktop.core.descriptor_process import DescriptorProcess
from megaportrait_desktop.core.dlib_recogniser import RECOGNITION_MODEL, DlibBackend, model_paths


def test_the_helper_gives_the_descriptor_computed_here_and_a_dead_one_is_replaced(astronaut, astronaut_face) -> None:
    here = DlibBackend()
    expected = here.embed(astronaut, astronaut_face)
    helper = DescriptorProcess(model_paths()[RECOGNITION_MODEL])
    try:
        chip = here.chip(astronaut, astronaut_face)
        np.testing.assert_array_equal(helper.compute(chip), expected)
        backend = DlibBackend()
        backend.remote = helper
        np.testing.assert_array_equal(backend.embed(astronaut, astronaut_face), expected)
        helper._process.kill()
        helper._process.wait(5)
        with pytest.raises(OSError):
            helper.compute(chip)
        backend._cache.clear()
        np.testing.assert_array_equal(backend.embed(astronaut, astronaut_face), expected)  # computed here again
        assert backend.remote is None
    finally:
        helper.close()


def test_a_helper_without_its_model_fails_as_an_os_error(tmp_path, astronaut, astronaut_face) -> None:
    helper = DescriptorProcess(tmp_path / "missing.dat")
    try:
        with pytest.raises(OSError):
            helper.compute(DlibBackend().chip(astronaut, astronaut_face))
    finally:
        helper.close()
