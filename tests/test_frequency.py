from __future__ import annotations

import numpy as np
import pytest

from megaportrait_desktop.core import frequency


@pytest.mark.parametrize("cutoff", [0.5, 2.0, 10.0, 40.0])
def test_light_map_of_a_constant_image_is_that_constant(cutoff: float) -> None:
    image = np.full((300, 257, 3), (0.2, 0.55, 0.9), np.float32)
    light = frequency.light_map(image, cutoff)
    assert light.shape == image.shape and light.dtype == np.float32
    np.testing.assert_allclose(light, image, atol=1e-5)


@pytest.mark.parametrize("cutoff", [1.5, 6.0, 25.0])
def test_light_plus_hf_reconstructs_the_input(astronaut: np.ndarray, cutoff: float) -> None:
    image = astronaut.astype(np.float32) / 255
    light, hf = frequency.light_map(image, cutoff), frequency.hf_map(image, cutoff)
    # Stated tolerance: float32 rounding only.
    np.testing.assert_allclose(light + hf, image, atol=1e-6)
    np.testing.assert_allclose(frequency.recombine(light, hf), image, atol=1e-6)


def test_low_pass_removes_fine_detail_and_keeps_coarse(astronaut: np.ndarray) -> None:
    grey = astronaut.mean(axis=2).astype(np.float32) / 255
    checker = (np.indices((256, 256)).sum(0) % 2).astype(np.float32)
    assert np.abs(frequency.light_map(checker, 4.0)[16:-16, 16:-16] - 0.5).max() < 1e-3
    hf = frequency.hf_map(grey, 8.0)
    assert abs(float(hf.mean())) < 2e-3  # the HF-map is centred on 0
    # A cut-off of 8 px keeps a gradient a few hundred pixels wide almost untouched.
    ramp = np.tile(np.linspace(0, 1, 512, dtype=np.float32), (64, 1))
    assert np.abs(frequency.light_map(ramp, 8.0)[:, 64:-64] - ramp[:, 64:-64]).max() < 2e-3


def test_cutoff_behaves_like_a_gaussian_sigma() -> None:
    # The variance of a blurred impulse is sigma² (within 15 % for the reduced-copy path).
    for sigma in (2.0, 8.0, 20.0):
        impulse = np.zeros((513, 513), np.float32)
        impulse[256, 256] = 1.0
        response = frequency.light_map(impulse, sigma)
        xs = np.arange(513) - 256
        profile = response.sum(axis=0) / response.sum()
        measured = float(np.sqrt((profile * xs**2).sum()))
        assert abs(measured - sigma) / sigma < 0.15, (sigma, measured)


def test_frequency_separation_updates_match_the_functions(astronaut: np.ndarray, grace: np.ndarray) -> None:
    a = astronaut.astype(np.float32) / 255
    b = np.ascontiguousarray(grace[:512, :512]).astype(np.float32) / 255
    live = frequency.FrequencySeparation(a, b)
    for light_cut, hf_cut, gain in ((10.0, 10.0, 1.0), (30.0, 4.0, 0.5), (2.0, 12.0, 1.5)):
        light, hf, out = live.update(light_cut, hf_cut, gain)
        np.testing.assert_allclose(light, frequency.light_map(a, light_cut), atol=1e-6)
        np.testing.assert_allclose(hf, frequency.hf_map(b, hf_cut), atol=1e-6)
        expected = np.clip(frequency.light_map(a, light_cut) + gain * frequency.hf_map(b, hf_cut), 0, 1)
        np.testing.assert_allclose(out, expected, atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_detail_weight_zero_gives_the_light_map() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((64, 64, 3), dtype=np.float32), rng.random((64, 64, 3), dtype=np.float32)
    light = frequency.light_map(a, 5)
    out = frequency.recombine(light.copy(), frequency.hf_map(b, 5), detail_weight=0.0)
    np.testing.assert_allclose(out, np.clip(light, 0, 1), atol=1e-6)
