"""The HTTP API as clients see it: roles, uploads, the human work endpoints and their refusals."""
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from dataengine.annotation.models import HumanTask, Mask, TaskKind, TaskState
from dataengine.media.models import MediaItem
from model import rle as rle_lib
from tests.conftest import png_bytes, token_client
from tests.platform.factories import box_mask, image, propose

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def upload(client, project, *files):
    return client.post(f"/api/projects/{project.pk}/media/",
                       {"files": [SimpleUploadedFile(name, data) for name, data in files]}, format="multipart")


# ---------------------------------------------------------------- roles


def test_requests_without_credentials_are_refused(project):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/projects/").status_code == 401


def test_outsiders_do_not_see_the_project(project, outsider):
    client = token_client(outsider)
    assert client.get("/api/projects/").json()["results"] == []
    assert client.get(f"/api/projects/{project.pk}/").status_code == 404
    assert client.post(f"/api/projects/{project.pk}/tasks/next", {"kind": "correction"}).status_code == 404


def test_annotators_cannot_upload_create_datapoints_or_export(project, alice):
    client = token_client(alice)
    assert upload(client, project, ("a.png", png_bytes())).status_code == 403
    assert client.post(f"/api/projects/{project.pk}/datapoints/", {"media": [1], "phrases": ["x"]},
                       format="json").status_code == 403
    assert client.post(f"/api/projects/{project.pk}/snapshots/").status_code == 403
    assert client.patch(f"/api/projects/{project.pk}/", {"phase": 2}, format="json").status_code == 403


def test_only_staff_create_projects_and_the_creator_becomes_admin(staff, lead):
    assert token_client(lead).post("/api/projects/", {"name": "P"}, format="json").status_code == 403
    response = token_client(staff).post("/api/projects/", {"name": "P", "phase": 1}, format="json")
    assert response.status_code == 201
    members = token_client(staff).get(f"/api/projects/{response.json()['id']}/members/").json()
    assert members == [{"id": members[0]["id"], "username": "staff", "role": "admin",
                        "created_at": members[0]["created_at"]}]


def test_a_data_lead_sets_engine_settings_and_bad_ones_are_refused(project, lead):
    client = token_client(lead)
    ok = client.patch(f"/api/projects/{project.pk}/", {"config": {"dedupe_iou": 0.5}}, format="json")
    assert ok.status_code == 200 and ok.json()["config"] == {"dedupe_iou": 0.5}
    for bad in ({"dedupe_iou": 0}, {"dedupe_iou": "0.7"}, {"dedupe_iou": True}, {"nms": 0.5}, {"drop_precision": 1.5},
                {"target_precision": 0}):
        response = client.patch(f"/api/projects/{project.pk}/", {"config": bad}, format="json")
        assert response.status_code == 400 and "config" in response.json()
    project.refresh_from_db()
    assert project.config == {"dedupe_iou": 0.5}  # a refused edit loses nothing


def test_a_data_lead_adds_members(project, lead, outsider):
    response = token_client(lead).post(f"/api/projects/{project.pk}/members/",
                                       {"username": "outsider", "role": "annotator"}, format="json")
    assert response.status_code == 201
    assert token_client(outsider).get(f"/api/projects/{project.pk}/").status_code == 200


# ---------------------------------------------------------------- media


def test_upload_recognises_duplicates_and_keeps_corrupt_files_as_failed_items(project, lead):
    client = token_client(lead)
    good = png_bytes(seed=1)
    response = upload(client, project, ("good.png", good), ("copy.png", good), ("notes.txt", b"hello"),
                      ("broken.png", good[: len(good) // 2]), ("empty.png", b""))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert len(body["created"]) == 1 and len(body["duplicates"]) == 1 and len(body["failed"]) == 3
    failed = {m.name: m.error for m in MediaItem.objects.filter(status="failed")}
    assert "not an image" in failed["notes.txt"]
    assert "corrupt" in failed["broken.png"] or "truncated" in failed["broken.png"]
    assert "empty" in failed["empty.png"]
    item = MediaItem.objects.get(name="good.png")
    assert (item.width, item.height, item.status) == (64, 48, "ready")
    assert client.get(f"/api/media/{item.pk}/file").getvalue() == good


@override_settings(MEDIA_MAX_UPLOAD_BYTES=1000)
def test_an_oversized_upload_is_refused_with_413_and_nothing_is_stored(project, lead):
    response = upload(token_client(lead), project, ("small.png", png_bytes(4, 4)), ("big.png", png_bytes(200, 200)))
    assert response.status_code == 413
    assert "big.png" in response.json()["message"]
    assert MediaItem.objects.count() == 0


def test_datapoints_pair_media_with_normalised_phrases(project, lead):
    media = image(project)
    response = token_client(lead).post(f"/api/projects/{project.pk}/datapoints/",
                                       {"media": [media.pk], "phrases": ["  Red   Circle ", "blue square"]},
                                       format="json")
    assert response.status_code == 201
    assert sorted(d["phrase"] for d in response.json()) == ["blue square", "red circle"]
    bad = token_client(lead).post(f"/api/projects/{project.pk}/datapoints/",
                                  {"media": [media.pk], "phrases": ["   "]}, format="json")
    assert bad.status_code == 400


def test_datapoints_on_failed_media_are_refused(project, lead):
    client = token_client(lead)
    failed_id = upload(client, project, ("x.png", b"not a png")).json()["failed"][0]
    response = client.post(f"/api/projects/{project.pk}/datapoints/", {"media": [failed_id], "phrases": ["cat"]},
                           format="json")
    assert response.status_code == 400 and "failed ingest" in response.json()["message"]


# ---------------------------------------------------------------- human work


def next_task(client, project, kind):
    return client.post(f"/api/projects/{project.pk}/tasks/next", {"kind": kind}, format="json")


def test_next_returns_204_when_the_queue_is_empty_and_400_for_an_unknown_kind(project, alice):
    client = token_client(alice)
    assert next_task(client, project, "mask_verification").status_code == 204
    assert next_task(client, project, "painting").status_code == 400


def test_an_annotator_leases_verifies_and_sees_only_their_own_tasks(project, alice, bob):
    propose(project, image(project), {"red circle": [box_mask(0, 0, 10, 10)]})
    a, b = token_client(alice), token_client(bob)
    task = next_task(a, project, "mask_verification").json()
    assert task["datapoint"]["phrase"] == "red circle"
    assert task["mask"]["rle"]["size"] == [48, 64]
    assert task["datapoint"]["media"]["file_url"].endswith("/file")
    assert a.get(f"/api/tasks/{task['id']}/").status_code == 200
    assert b.get(f"/api/tasks/{task['id']}/").status_code == 403
    refused = b.post(f"/api/tasks/{task['id']}/mask-verification",
                     {"lease_token": task["lease_token"], "decision": "reject", "seconds": 1}, format="json")
    assert refused.status_code == 403
    done = a.post(f"/api/tasks/{task['id']}/mask-verification",
                  {"lease_token": task["lease_token"], "decision": "accept", "seconds": 4.5}, format="json")
    assert done.status_code == 200 and done.json()["datapoint_state"] == "exhaustivity_verification"
    again = a.post(f"/api/tasks/{task['id']}/mask-verification",
                   {"lease_token": task["lease_token"], "decision": "reject", "seconds": 1}, format="json")
    assert again.status_code == 409
    assert Mask.objects.get(pk=task["mask"]["id"]).state == "accepted"


def test_a_wrong_option_is_a_400_with_the_choices(project, alice):
    propose(project, image(project), {"red circle": [box_mask(0, 0, 10, 10)]})
    client = token_client(alice)
    task = next_task(client, project, "mask_verification").json()
    response = client.post(f"/api/tasks/{task['id']}/mask-verification",
                           {"lease_token": task["lease_token"], "decision": "maybe", "seconds": 1}, format="json")
    assert response.status_code == 400 and "decision" in response.json()


def correction_for(client, project):
    ev = next_task(client, project, "exhaustivity_verification").json()
    client.post(f"/api/tasks/{ev['id']}/exhaustivity-verification",
                {"lease_token": ev["lease_token"], "decision": "reject", "seconds": 1}, format="json")
    return next_task(client, project, "correction").json()


@pytest.mark.parametrize("rle, message", [
    ({"size": [48, 64], "counts": "!!!"}, "alphabet"),
    ({"size": [48, 64], "counts": "0123"}, "pixels"),
    ({"size": [10, 10], "counts": rle_lib.encode(box_mask(0, 0, 2, 2))["counts"]}, "does not match the image"),
    ({"counts": "abc"}, "exactly the keys"),
    ("not an object", "exactly the keys"),
])
def test_a_malformed_rle_in_a_correction_is_a_400_with_a_message(project, alice, rle, message):
    propose(project, image(project), {"green star": []})
    client = token_client(alice)
    task = correction_for(client, project)
    response = client.post(f"/api/tasks/{task['id']}/correction", {
        "lease_token": task["lease_token"], "datapoint_revision": task["datapoint"]["revision"], "outcome": "complete",
        "masks": [{"rle": rle}], "seconds": 3}, format="json")
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert HumanTask.objects.get(pk=task["id"]).state == TaskState.LEASED


def test_a_stale_correction_is_a_409_and_loses_nothing(project, alice):
    propose(project, image(project), {"green star": []})
    client = token_client(alice)
    task = correction_for(client, project)
    mask = rle_lib.encode(box_mask(5, 5, 15, 15))
    stale = client.post(f"/api/tasks/{task['id']}/correction", {
        "lease_token": task["lease_token"], "datapoint_revision": task["datapoint"]["revision"] - 1,
        "outcome": "complete", "masks": [{"rle": mask}], "seconds": 3}, format="json")
    assert stale.status_code == 409 and stale.json()["revision"] == task["datapoint"]["revision"]
    fresh = client.get(f"/api/tasks/{task['id']}/").json()
    ok = client.post(f"/api/tasks/{task['id']}/correction", {
        "lease_token": fresh["lease_token"], "datapoint_revision": fresh["datapoint"]["revision"],
        "outcome": "complete", "masks": [{"rle": mask}], "seconds": 3}, format="json")
    assert ok.status_code == 200 and ok.json()["final_label"] == "positive"


def test_heartbeat_and_release_over_http(project, alice, bob):
    propose(project, image(project), {"red circle": [box_mask(0, 0, 10, 10)]})
    a = token_client(alice)
    task = next_task(a, project, "mask_verification").json()
    assert a.post(f"/api/tasks/{task['id']}/heartbeat", {"lease_token": task["lease_token"]},
                  format="json").status_code == 200
    assert token_client(bob).post(f"/api/tasks/{task['id']}/heartbeat", {"lease_token": task["lease_token"]},
                                  format="json").status_code == 403
    assert a.post(f"/api/tasks/{task['id']}/release", {"lease_token": task["lease_token"]},
                  format="json").status_code == 204
    assert next_task(token_client(bob), project, "mask_verification").json()["id"] == task["id"]


def test_the_landing_page_shows_the_project_to_a_signed_in_member(client, project, lead):
    client.force_login(lead)
    page = client.get("/").content.decode()
    assert "Shapes" in page and "Data engine" in page
