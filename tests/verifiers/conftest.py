"""Fixtures for the verifier tests: a synthetic scene and a saved tiny (random) verifier checkpoint."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from model import rle
from model.synthetic import render_scene


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def scene():
    """Scene 3 of world 0 (224 px): a large striped yellow square and a dotted yellow circle."""
    return render_scene(0, 3)


@pytest.fixture(scope="session")
def scene_image(scene) -> Image.Image:
    return Image.fromarray(scene.image)


@pytest.fixture(scope="session")
def scene_rles(scene) -> list[dict]:
    return [rle.encode(mask) for mask in scene.visible]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random tiny verifier saved with calibration fields, as training writes them."""
    from verifiers.model import build_tiny_verifier, save_verifier

    folder = tmp_path_factory.mktemp("verifier") / "tiny-v1"
    verifier = build_tiny_verifier(seed=1)
    save_verifier(verifier, folder, manifest={"model_version": "verifier-tiny-v1",
                                              "temperature": {"mv": 1.5, "ev": 0.8},
                                              "thresholds": {"mv": 0.9, "ev": None}, "target_precision": 0.98})
    return folder
