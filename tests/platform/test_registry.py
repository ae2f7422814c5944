"""The model registry: versions with parent, snapshot and metrics; promote, roll back in one call, retire;
new jobs use the promoted version and every proposal records the version that made it."""
from __future__ import annotations

import pytest

from dataengine.accounts.services import create_project
from dataengine.annotation.models import Proposal
from dataengine.annotation.proposing import request_proposals
from dataengine.concepts.services import create_datapoints
from dataengine.engine.models import AuditEvent, Job, ModelKind, ModelStatus, ModelVersion, Snapshot
from dataengine.engine.services import (
    model_history,
    promote_model_version,
    register_model_version,
    retire_model_version,
    rollback_model_version,
)
from dataengine.errors import Conflict, InvalidInput
from tests.conftest import token_client
from tests.platform.factories import image

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def versions(*names, kind=ModelKind.SAM3):
    return [register_model_version(name=name, uri=f"preset:tiny?seed={i}", kind=kind) for i, name in enumerate(names)]


def status(*items):
    return [ModelVersion.objects.get(pk=v.pk).status for v in items]


def test_staff_register_versions_with_parent_snapshot_and_metrics(project, staff, lead):
    snapshot = Snapshot.objects.create(project=project, storage_name="snapshots/1.json", sha256="0" * 64)
    register_model_version(name="sam3-base", uri="preset:tiny")
    body = {"name": "sam3-ft-1", "uri": "s3://models/sam3-ft-1", "parent": "sam3-base", "snapshot": snapshot.pk,
            "metrics": {"cgF1": 0.41}, "manifest": {"tracker_uri": "s3://models/tracker-1"}}
    assert token_client(lead).post("/api/models/", body, format="json").status_code == 403
    response = token_client(staff).post("/api/models/", body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["parent"] == "sam3-base" and created["snapshot"] == snapshot.pk
    assert created["status"] == "candidate" and created["metrics"] == {"cgF1": 0.41}
    assert ModelVersion.objects.get(name="sam3-ft-1").snapshot == snapshot
    detail = token_client(lead).get(f"/api/models/{created['id']}/").json()
    assert detail["name"] == "sam3-ft-1"
    listed = token_client(lead).get("/api/models/", {"status": "candidate", "kind": "sam3"}).json()["results"]
    assert [v["name"] for v in listed] == ["sam3-base", "sam3-ft-1"]
    assert token_client(lead).get("/api/models/", {"status": "live"}).status_code == 400


def test_promote_then_roll_back_in_one_call(project, lead):
    a, b, c = versions("sam3-a", "sam3-b", "sam3-c")
    client = token_client(lead)
    for version in (a, b, c):
        response = client.post(f"/api/projects/{project.pk}/models/promote", {"model_version": version.name})
        assert response.status_code == 200 and response.json()["status"] == "promoted"
    assert status(a, b, c) == ["candidate", "candidate", "promoted"]
    response = client.post(f"/api/projects/{project.pk}/models/rollback", {}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "sam3-b"
    project.refresh_from_db()
    assert project.active_model == b and status(a, b, c) == ["candidate", "promoted", "candidate"]
    assert client.post(f"/api/projects/{project.pk}/models/rollback").json()["name"] == "sam3-a"
    response = client.post(f"/api/projects/{project.pk}/models/rollback")
    assert response.status_code == 409 and "nothing to roll back to" in response.json()["message"]
    history = client.get(f"/api/projects/{project.pk}/models/history").json()
    assert [(h["action"], h["version"], h["previous"]) for h in history] == [
        ("rollback", "sam3-a", "sam3-b"), ("rollback", "sam3-b", "sam3-c"), ("promote", "sam3-c", "sam3-b"),
        ("promote", "sam3-b", "sam3-a"), ("promote", "sam3-a", None)]
    assert {h["actor"] for h in history} == {"lead"} and {h["kind"] for h in history} == {"sam3"}


def test_rollback_after_a_new_promotion_returns_to_the_one_before(project):
    a, b, c = versions("sam3-a", "sam3-b", "sam3-c")
    for version in (a, b):
        promote_model_version(project, version)
    rollback_model_version(project)  # -> a
    promote_model_version(project, c)  # a, c
    assert rollback_model_version(project) == a
    promote_model_version(project, a)  # promoting the active one again changes nothing
    with pytest.raises(Conflict):
        rollback_model_version(project)


def test_retired_versions_are_never_deployed_again(project, staff, lead):
    a, b, c = versions("sam3-a", "sam3-b", "sam3-c")
    for version in (a, b, c):
        promote_model_version(project, version)
    response = token_client(staff).post(f"/api/models/{c.pk}/retire")
    assert response.status_code == 409 and "Shapes" in response.json()["message"]  # active: roll back first
    assert token_client(lead).post(f"/api/models/{b.pk}/retire").status_code == 403
    assert token_client(staff).post(f"/api/models/{b.pk}/retire").json()["status"] == "retired"
    assert rollback_model_version(project) == a  # b is skipped
    response = token_client(lead).post(f"/api/projects/{project.pk}/models/promote", {"model_version": "sam3-b"})
    assert response.status_code == 409 and "retired" in response.json()["message"]
    assert AuditEvent.objects.filter(action="model.retire", target_id=str(b.pk)).count() == 1
    assert retire_model_version(b).status == ModelStatus.RETIRED  # idempotent


def test_a_version_serving_another_project_stays_promoted(project, staff):
    other = create_project(name="Streets", creator=staff)
    a, b = versions("sam3-a", "sam3-b")
    promote_model_version(project, a)
    promote_model_version(other, a)
    promote_model_version(project, b)
    assert status(a, b) == ["promoted", "promoted"]
    promote_model_version(other, b)
    assert status(a, b) == ["candidate", "promoted"]
    assert [row["version"] for row in model_history(other)] == ["sam3-b", "sam3-a"]


def test_verifier_versions_deploy_to_the_verifier_slot(project):
    (sam3,) = versions("sam3-a")
    v1, v2 = versions("verifier-1", "verifier-2", kind=ModelKind.VERIFIER)
    promote_model_version(project, sam3)
    promote_model_version(project, v1)
    promote_model_version(project, v2)
    project.refresh_from_db()
    assert project.active_model == sam3 and project.active_verifier == v2
    assert rollback_model_version(project, kind=ModelKind.VERIFIER) == v1
    project.refresh_from_db()
    assert project.active_verifier == v1 and project.active_model == sam3
    assert [row["version"] for row in model_history(project, kind=ModelKind.SAM3)] == ["sam3-a"]
    (mask_only,) = versions("mv-only", kind=ModelKind.MASK_VERIFIER)
    with pytest.raises(InvalidInput, match="cannot be deployed"):
        promote_model_version(project, mask_only)


def test_history_is_for_members(project, outsider, alice):
    promote_model_version(project, versions("sam3-a")[0])
    assert token_client(outsider).get(f"/api/projects/{project.pk}/models/history").status_code == 404
    assert token_client(alice).get(f"/api/projects/{project.pk}/models/history").status_code == 200
    assert token_client(alice).post(f"/api/projects/{project.pk}/models/rollback").status_code == 403


def test_new_jobs_use_the_promoted_version_and_proposals_record_it(project, django_capture_on_commit_callbacks):
    """Workers read the model URI from each job's payload: after a promotion the next job runs the new version
    (here end to end, eagerly, with two tiny presets) and every stored proposal names the version that made it."""
    a, b = versions("sam3-a", "sam3-b")
    media = image(project)
    promote_model_version(project, a)
    first = create_datapoints(project, [(media, "red circle")])
    with django_capture_on_commit_callbacks(execute=True):
        (job_a,) = request_proposals(project, datapoints=first)
    promote_model_version(project, b)
    second = create_datapoints(project, [(media, "blue square")])
    with django_capture_on_commit_callbacks(execute=True):
        (job_b,) = request_proposals(project, datapoints=second)
    job_a, job_b = Job.objects.get(pk=job_a.pk), Job.objects.get(pk=job_b.pk)
    assert job_a.payload["model"] == {"version": "sam3-a", "uri": a.uri} and job_a.state == "done", job_a.error
    assert job_b.payload["model"] == {"version": "sam3-b", "uri": b.uri} and job_b.state == "done", job_b.error
    assert Proposal.objects.get(datapoint=first[0]).model_version == a
    assert Proposal.objects.get(datapoint=second[0]).model_version == b
