"""Named fixtures: the people and the project the tests talk about."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; two oversubscribe a busy 2-core machine badly."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password="pw-" + username, **extra)

    return make


def token_client(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def lead(make_user):
    return make_user("lead")


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def outsider(make_user):
    return make_user("outsider")


@pytest.fixture
def project(staff, lead, alice, bob):
    from dataengine.accounts.models import Role
    from dataengine.accounts.services import add_member, create_project

    project = create_project(name="Shapes", creator=staff)
    add_member(project, lead, Role.DATA_LEAD)
    add_member(project, alice, Role.ANNOTATOR)
    add_member(project, bob, Role.ANNOTATOR)
    return project


@pytest.fixture
def as_user():
    return token_client


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
