"""Phase 2 audits over HTTP: a reviewer leases a sampled AI-accepted datapoint, confirms or rejects it, and
``GET /api/projects/{id}/verifier-precision`` follows per verifier version; and the refusals."""
import pytest

from dataengine.accounts.models import Role
from dataengine.accounts.services import add_member
from dataengine.annotation.models import HumanTask, TaskKind, TaskState, Verdict, VerdictKind
from dataengine.concepts.models import DatapointState
from dataengine.engine.models import ModelKind
from dataengine.engine.services import register_model_version
from tests.conftest import token_client
from tests.platform.factories import box_mask
from tests.platform.test_phase2_routing import CALIBRATED, ev_probs, proposed, verify

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


@pytest.fixture
def audited(project):
    """Phase 2, every auto-accepted datapoint sampled for review (audit_rate 1)."""
    verifier = register_model_version(name="verifier-test", uri="preset:tiny-verifier", kind=ModelKind.VERIFIER,
                                      manifest=CALIBRATED)
    project.phase, project.active_verifier, project.config = 2, verifier, {"audit_rate": 1.0}
    project.save()
    return project


@pytest.fixture
def rita(make_user, project):
    user = make_user("rita")
    add_member(project, user, Role.REVIEWER)
    return user


@pytest.fixture
def rob(make_user, project):
    user = make_user("rob")
    add_member(project, user, Role.REVIEWER)
    return user


def auto_accept(project, phrase: str, x: int = 0):
    """A datapoint the verifiers accept on their own (one confident mask, confident EV): a review task."""
    dp = proposed(project, [box_mask(x, 0, x + 20, 20)], phrase=phrase)
    verify(project, dp, [0.95], ev_probs(0.97))
    dp.refresh_from_db()
    assert (dp.state, dp.auto_accepted) == (DatapointState.ACCEPTED, True)
    assert HumanTask.objects.get(datapoint=dp).kind == TaskKind.REVIEW
    return dp


def lease_review(client, project) -> dict:
    response = client.post(f"/api/projects/{project.pk}/tasks/next", {"kind": "review"}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def review(client, task: dict, decision: str, *, lease_token=None, seconds=4.0):
    token = task["lease_token"] if lease_token is None else lease_token
    return client.post(f"/api/tasks/{task['id']}/review",
                       {"lease_token": token, "decision": decision, "seconds": seconds}, format="json")


def precision(client, project) -> dict:
    response = client.get(f"/api/projects/{project.pk}/verifier-precision")
    assert response.status_code == 200, response.content
    return {row["verifier_version"]: (row["reviewed"], row["confirmed"], row["precision"],
                                      row["auto_accepted_in_project"]) for row in response.json()}


def test_a_reviewer_audits_ai_accepted_items_and_precision_per_version_follows(audited, rita, lead):
    client = token_client(rita)
    first, second = auto_accept(audited, "red circle"), auto_accept(audited, "blue square", x=30)
    assert precision(client, audited) == {}

    task = lease_review(client, audited)
    assert task["kind"] == "review" and task["datapoint"]["id"] in (first.pk, second.pk)
    assert len(task["masks"]) == 1  # the accepted mask the AI kept, to judge
    response = review(client, task, "confirm")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["task_state"], body["datapoint_state"], body["final_label"]) == ("done", "accepted", "positive")
    assert precision(client, audited) == {"verifier-test": (1, 1, 1.0, 2)}

    task = lease_review(client, audited)
    response = review(client, task, "reject", seconds=9)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["task_state"], body["datapoint_state"]) == ("done", "correction")  # back to a human correction
    correction = HumanTask.objects.get(datapoint_id=body["datapoint"], kind=TaskKind.CORRECTION)
    assert correction.state == TaskState.QUEUED
    assert precision(client, audited) == {"verifier-test": (2, 1, 0.5, 2)}
    assert client.post(f"/api/projects/{audited.pk}/tasks/next", {"kind": "review"},
                       format="json").status_code == 204

    # A newer verifier: its audits are counted apart from the first one's.
    audited.active_verifier = register_model_version(name="verifier-v2", uri="preset:tiny-verifier?v=2",
                                                     kind=ModelKind.VERIFIER, manifest=CALIBRATED)
    audited.save()
    auto_accept(audited, "green star", x=60)
    assert review(client, lease_review(client, audited), "confirm").status_code == 200
    expected = {"verifier-test": (2, 1, 0.5, 3), "verifier-v2": (1, 1, 1.0, 3)}
    assert precision(client, audited) == expected
    assert precision(token_client(lead), audited) == expected  # data leads see it too
    reviews = Verdict.objects.filter(kind=VerdictKind.REVIEW).order_by("id")
    assert [(v.user.username, v.decision, v.seconds) for v in reviews] == [
        ("rita", "confirm", 4.0), ("rita", "reject", 9.0), ("rita", "confirm", 4.0)]


def test_annotators_and_outsiders_may_not_review_or_read_precision(audited, rita, alice, outsider):
    auto_accept(audited, "red circle")
    annotator = token_client(alice)
    assert annotator.post(f"/api/projects/{audited.pk}/tasks/next", {"kind": "review"},
                          format="json").status_code == 403
    assert annotator.get(f"/api/projects/{audited.pk}/verifier-precision").status_code == 403
    stranger = token_client(outsider)
    assert stranger.post(f"/api/projects/{audited.pk}/tasks/next", {"kind": "review"},
                         format="json").status_code == 404
    assert stranger.get(f"/api/projects/{audited.pk}/verifier-precision").status_code == 404

    task = lease_review(token_client(rita), audited)
    assert review(annotator, task, "reject").status_code == 403  # even with the reviewer's lease token
    assert review(stranger, task, "reject").status_code == 404
    assert annotator.post("/api/tasks/999999/review", {"lease_token": 1, "decision": "confirm", "seconds": 1},
                          format="json").status_code == 404
    assert not Verdict.objects.filter(kind=VerdictKind.REVIEW).exists()
    assert HumanTask.objects.get(pk=task["id"]).state == TaskState.LEASED  # still rita's


def test_another_reviewers_task_is_refused(audited, rita, rob):
    auto_accept(audited, "red circle")
    task = lease_review(token_client(rita), audited)
    response = review(token_client(rob), task, "reject")
    assert response.status_code == 403 and "another" in response.json()["message"]
    assert token_client(rob).post(f"/api/projects/{audited.pk}/tasks/next", {"kind": "review"},
                                  format="json").status_code == 204  # the only review is rita's
    assert not Verdict.objects.filter(kind=VerdictKind.REVIEW).exists()
    assert review(token_client(rita), task, "confirm").status_code == 200


def test_a_stale_lease_or_a_finished_review_is_a_conflict_and_changes_nothing(audited, rita):
    client = token_client(rita)
    auto_accept(audited, "red circle")
    old = lease_review(client, audited)
    assert client.post(f"/api/tasks/{old['id']}/release", {"lease_token": old["lease_token"]},
                       format="json").status_code == 204
    new = lease_review(client, audited)
    assert new["id"] == old["id"] and new["lease_token"] != old["lease_token"]
    stale = review(client, old, "reject")
    assert stale.status_code == 409 and "stale" in stale.json()["message"]
    assert not Verdict.objects.filter(kind=VerdictKind.REVIEW).exists()
    assert review(client, new, "confirm").status_code == 200
    again = review(client, new, "reject")
    assert again.status_code == 409 and "already done" in again.json()["message"]
    assert list(Verdict.objects.filter(kind=VerdictKind.REVIEW).values_list("decision", flat=True)) == ["confirm"]
    assert precision(client, audited) == {"verifier-test": (1, 1, 1.0, 1)}


@pytest.mark.parametrize("body", [
    {"decision": "confirm", "seconds": 3},  # no lease token
    {"lease_token": "abc", "decision": "confirm", "seconds": 3},
    {"lease_token": None, "decision": "confirm", "seconds": 3},
    {"decision": "maybe"},  # lease token filled in below
    {"decision": "accept"},  # an MV decision, not a review one
    {"decision": "confirm", "seconds": -1},
    {"decision": "confirm", "seconds": "soon"},
    {"decision": "confirm", "seconds": 3, "lease_token": -1},
    "not json",
    [],
])
def test_malformed_review_bodies_are_400_and_change_nothing(audited, rita, body):
    client = token_client(rita)
    auto_accept(audited, "red circle")
    task = lease_review(client, audited)
    url = f"/api/tasks/{task['id']}/review"
    if isinstance(body, str):
        response = client.generic("POST", url, body, content_type="application/json")
    else:
        if isinstance(body, dict) and "decision" in body and "lease_token" not in body and len(body) == 1:
            body = {**body, "lease_token": task["lease_token"], "seconds": 3}
        response = client.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert not Verdict.objects.filter(kind=VerdictKind.REVIEW).exists()
    assert HumanTask.objects.get(pk=task["id"]).state == TaskState.LEASED


def test_the_review_endpoint_refuses_other_kinds_of_task(audited, rita):
    """A reviewer may hold a correction task; submitting it as a review is a 400, not a silent verdict."""
    client = token_client(rita)
    dp = proposed(audited, [box_mask(0, 0, 20, 20)])
    verify(audited, dp, [0.95], ev_probs(0.3))  # the AI leans to reject: goes to correction
    response = client.post(f"/api/projects/{audited.pk}/tasks/next", {"kind": "correction"}, format="json")
    assert response.status_code == 200
    task = response.json()
    bad = review(client, task, "confirm")
    assert bad.status_code == 400 and "not review" in bad.json()["message"]
    assert not Verdict.objects.filter(kind=VerdictKind.REVIEW).exists()


def test_a_datapoint_shows_leads_whether_the_ai_accepted_it_and_why_it_may_be_wrong(audited, lead):
    accepted = auto_accept(audited, "red circle")
    flagged = proposed(audited, [box_mask(0, 0, 20, 20)], phrase="blue star")
    flagged.proposals.update(presence_score=0.55)
    verify(audited, flagged, [0.95], ev_probs(0.97))
    client = token_client(lead)
    shown = {row["phrase"]: row for row in client.get(f"/api/projects/{audited.pk}/datapoints/").json()["results"]}
    assert (shown["red circle"]["auto_accepted"], shown["red circle"]["failure_signs"]) == (True, [])
    assert (shown["blue star"]["auto_accepted"], shown["blue star"]["failure_signs"]) == (False, ["presence_margin"])
    assert client.get(f"/api/datapoints/{accepted.pk}/").json()["auto_accepted"] is True
