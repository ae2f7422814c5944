"""POST /api/media/{id}/segment: clicks and boxes -> one mask, for members who may annotate."""
from __future__ import annotations

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from django.core.files.storage import default_storage

from dataengine.annotation import interactive as click_service
from dataengine.engine.models import Job, JobState, ModelStatus
from dataengine.engine.services import register_model_version
from model import rle
from tests.conftest import token_client
from tests.platform.factories import HEIGHT, WIDTH, active_model, image
from workers.interactive import DEFAULT_TRACKER_URI
from workers import interactive as click_tasks

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_worker():
    click_tasks.clear_click_predictors()
    yield
    click_tasks.clear_click_predictors()


def click(user, media, **body):
    body.setdefault("points", [[20, 10]])
    body.setdefault("labels", [1])
    return token_client(user).post(f"/api/media/{media.pk}/segment", body, format="json")


def test_an_annotator_clicks_twice_and_the_second_click_reuses_the_embedding(project, alice):
    version = active_model(project)
    media = image(project)
    first = click(alice, media, points=[[20, 10], [50, 40]], labels=[1, 0])
    assert first.status_code == 200, first.json()
    body = first.json()
    assert body["cached_embedding"] is False and body["model_version"] == version.name
    assert body["tracker"] == DEFAULT_TRACKER_URI and body["image_size"] == [HEIGHT, WIDTH]
    assert rle.validate(body["rle"], size=(HEIGHT, WIDTH)) and 0 <= body["score"] <= 1
    second = click(alice, media, points=[[20, 10]], labels=[1], box=[5, 5, 60, 45])
    assert second.status_code == 200 and second.json()["cached_embedding"] is True
    assert not Job.objects.filter(task_name=click_tasks.TASK_NAME).exists()  # successful clicks leave no rows


def test_without_an_active_model_the_tiny_tracker_answers(project, bob):
    response = click(bob, image(project), points=[], labels=[], box=[0, 0, WIDTH, HEIGHT])
    assert response.status_code == 200 and response.json()["model_version"] is None


def test_only_members_who_may_annotate(project, outsider, lead):
    media = image(project)
    assert click(outsider, media).status_code == 404
    assert click(lead, media).status_code == 200
    assert token_client(outsider).post("/api/media/999999/segment", {"points": [[1, 1]], "labels": [1]},
                                       format="json").status_code == 404


@pytest.mark.parametrize(("body", "message"), [
    ({"points": [[WIDTH + 1, 5]], "labels": [1]}, "outside"),
    ({"points": [[5, -0.5]], "labels": [1]}, "outside"),
    ({"points": [[5, 5]], "labels": [2]}, "labels"),
    ({"points": [[5, 5]], "labels": [1, 0]}, "one label per point"),
    ({"points": [], "labels": []}, "at least one point or a box"),
    ({"points": [[5]], "labels": [1]}, "points"),
    ({"points": [], "labels": [], "box": [30, 30, 10, 10]}, "x1 < x2"),
    ({"points": [], "labels": [], "box": [0, 0, WIDTH, HEIGHT + 5]}, "outside"),
    ({"points": [], "labels": [], "box": [1, 2, 3]}, "box"),
    ({"points": [[1, 1]] * 65, "labels": [1] * 65}, "points"),
    ({"model_version": "no-such-model"}, "unknown model_version"),
])
def test_bad_prompts_are_400_with_a_reason(project, alice, body, message):
    response = click(alice, image(project), **body)
    assert response.status_code == 400
    assert message in str(response.json())


def test_a_named_model_version_and_its_tracker_checkpoint(project, alice, tmp_path):
    from model.sam3.interactive import build_tiny_tracker, save_tracker_checkpoint

    folder = save_tracker_checkpoint(*build_tiny_tracker(seed=4), tmp_path / "trk", manifest={})
    other = register_model_version(name="sam3-with-tracker", uri="preset:tiny",
                                   manifest={"tracker_uri": str(folder)})
    response = click(alice, image(project), model_version=other.name)
    assert response.status_code == 200 and response.json()["tracker"] == str(folder)
    other.status = ModelStatus.RETIRED
    other.save()
    response = click(alice, image(project), model_version=other.name)
    assert response.status_code == 400 and "retired" in response.json()["message"]


def test_a_tracker_that_does_not_load_is_503_recorded_on_a_failed_job(project, alice, tmp_path):
    version = active_model(project)
    version.manifest = {"tracker_uri": str(tmp_path / "missing-tracker")}
    version.save()
    media = image(project)
    for _ in range(2):
        response = click(alice, media)
        assert response.status_code == 503 and "no checkpoint folder" in response.json()["message"]
    job = Job.objects.get(pk=response.json()["job"])
    assert job.task_name == "sam3.segment_click.v1" and job.state == JobState.FAILED and job.project == project
    assert job.error.startswith("model: no checkpoint folder") and job.attempts == 2


def test_unreadable_media_is_422_recorded_on_a_failed_job_and_the_next_click_works(project, alice):
    media, good = image(project, "broken.png", seed=1), image(project, "good.png", seed=2)
    with default_storage.open(media.storage_name, "wb") as handle:  # damaged in storage after ingest
        handle.write(b"\x89PNG\r\n\x1a\n not a png any more")
    response = click(alice, media)
    assert response.status_code == 422 and response.json()["error"] == "media_error"
    assert media.sha256 in response.json()["message"]  # the message names the file
    assert Job.objects.get(pk=response.json()["job"]).error.startswith("media:")
    assert click(alice, good).status_code == 200


def test_failed_media_is_refused_before_any_work(project, alice):
    media = image(project)
    media.status, media.error = "failed", "corrupt image"
    media.save()
    response = click(alice, media)
    assert response.status_code == 409 and "corrupt image" in response.json()["message"]


class FakeAsyncResult:
    def __init__(self, outcome):
        self.outcome, self.forgotten, self.get_timeout = outcome, False, None

    def get(self, timeout=None, propagate=True):
        self.get_timeout = timeout
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def forget(self):
        self.forgotten = True


def test_with_a_result_backend_the_view_waits_on_the_queue_with_a_timeout(project, alice, monkeypatch):
    sent = []

    def apply_async(args, expires):
        sent.append({"payload": args[0], "expires": expires})
        return outcome

    monkeypatch.setattr(click_service, "click_mode", lambda: "queue")
    monkeypatch.setattr(click_tasks.segment_click, "apply_async", apply_async)
    media = image(project)
    outcome = FakeAsyncResult({"task": click_tasks.TASK_NAME, "rle": None,
                               "error": {"kind": "input", "message": "point 0 (20, 10) is outside the 8x8 image"}})
    response = click(alice, media)
    assert response.status_code == 400 and "outside the 8x8 image" in response.json()["message"]
    assert sent[0]["expires"] == click_service.CLICK_TIMEOUT_SECONDS and outcome.forgotten
    assert sent[0]["payload"]["media_sha256"] == media.sha256 and sent[0]["payload"]["points"] == [[20.0, 10.0]]
    outcome = FakeAsyncResult(CeleryTimeout("slow"))
    response = click(alice, media)
    assert response.status_code == 504 and outcome.get_timeout == click_service.CLICK_TIMEOUT_SECONDS


def test_click_mode_follows_the_celery_configuration(monkeypatch):
    from workers.app import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    assert click_service.click_mode() == "in-process"
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "result_backend", None)
    assert click_service.click_mode() == "in-process"  # a broker but nowhere to read the answer back
    monkeypatch.setitem(app.conf, "result_backend", "redis://127.0.0.1:6379/0")
    assert click_service.click_mode() == "queue"
