"""The committed OpenAPI schema (schema.yml) is what the code serves: regenerate it with `make schema`."""
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schema_matches_the_code(tmp_path):
    generated = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")
    assert generated.read_text() == (ROOT / "schema.yml").read_text(), "schema drift: run `make schema` and commit"


@pytest.mark.pg
@pytest.mark.django_db
def test_the_schema_is_served(client, staff):
    client.force_login(staff)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/projects/{id}/tasks/next" in response.content or b"/api/projects/{pk}/tasks/next" in response.content
