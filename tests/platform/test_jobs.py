"""Background jobs: keyed by their inputs, enqueued after commit, replays change nothing, failures are recorded."""
import time

import pytest

from dataengine.annotation.models import HumanTask, Mask, Proposal
from dataengine.annotation.proposing import request_proposals, store_proposal_result
from dataengine.concepts.models import Datapoint, DatapointState
from dataengine.concepts.services import create_datapoints
from dataengine.engine.models import Job, JobState
from dataengine.errors import InvalidInput
from dataengine.media.models import MediaItem
from model import rle as rle_lib
from model.rle import InvalidRLE
from tests.platform.factories import HEIGHT, WIDTH, active_model, box_mask, image, proposal_result

pytestmark = [pytest.mark.pg]


@pytest.mark.django_db
def test_proposals_need_an_active_model(project):
    create_datapoints(project, [(image(project), "red circle")])
    with pytest.raises(InvalidInput, match="no active model"):
        request_proposals(project)


@pytest.mark.django_db
def test_one_job_per_media_item_enqueued_only_after_commit(project, django_capture_on_commit_callbacks):
    active_model(project)
    first, second = image(project, "a.png", 1), image(project, "b.png", 2)
    create_datapoints(project, [(first, "red circle"), (first, "blue square"), (second, "red circle")])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        jobs = request_proposals(project)
    assert len(jobs) == 2 and len(callbacks) == 2
    assert sorted(len(j.payload["phrases"]) for j in jobs) == [1, 2]  # all phrases of an image in one job
    assert set(Datapoint.objects.values_list("state", flat=True)) == {DatapointState.PROPOSING}
    with django_capture_on_commit_callbacks(execute=False) as again:
        assert request_proposals(project) == []  # nothing pending any more
    assert again == []


@pytest.mark.django_db
def test_the_same_request_is_the_same_job(project, django_capture_on_commit_callbacks):
    active_model(project)
    media = image(project)
    [dp] = create_datapoints(project, [(media, "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [job] = request_proposals(project)
    Datapoint.objects.filter(pk=dp.pk).update(state=DatapointState.PENDING)  # e.g. a retry after a crash
    with django_capture_on_commit_callbacks(execute=False):
        [again] = request_proposals(project)
    assert again.pk == job.pk and Job.objects.count() == 1


@pytest.mark.django_db
def test_the_same_image_and_phrase_in_another_project_is_another_job(project, staff,
                                                                     django_capture_on_commit_callbacks):
    from dataengine.accounts.services import create_project

    other = create_project(name="Shapes again", creator=staff)
    for p in (project, other):
        active_model(p)
        create_datapoints(p, [(image(p), "red circle")])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [job] = request_proposals(project)
        [other_job] = request_proposals(other)
    assert other_job.pk != job.pk and len(callbacks) == 2
    assert other_job.payload["datapoints"] == {"red circle": Datapoint.objects.get(project=other).pk}


@pytest.mark.django_db
def test_a_replayed_store_changes_nothing(project, django_capture_on_commit_callbacks):
    active_model(project)
    media = image(project)
    create_datapoints(project, [(media, "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [job] = request_proposals(project)
    result = proposal_result(project, job, {"red circle": [box_mask(0, 0, 8, 8), box_mask(10, 10, 20, 20)]})
    store_proposal_result(job.pk, result)
    counts = (Proposal.objects.count(), Mask.objects.count(), HumanTask.objects.count())
    replay = store_proposal_result(job.pk, result)
    assert replay.state == JobState.DONE and replay.attempts == 2
    assert (Proposal.objects.count(), Mask.objects.count(), HumanTask.objects.count()) == counts == (1, 2, 2)


@pytest.mark.django_db
@pytest.mark.parametrize("beyond_cap", ["high", 1.5, True])
def test_a_proposal_with_a_bad_score_beyond_the_cap_is_refused_before_anything_is_written(
        project, django_capture_on_commit_callbacks, beyond_cap):
    active_model(project)
    create_datapoints(project, [(image(project), "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [job] = request_proposals(project)
    result = proposal_result(project, job, {"red circle": [box_mask(0, 0, 8, 8)]})
    result["proposals"][0]["best_beyond_cap"] = beyond_cap
    with pytest.raises(InvalidInput, match="best_beyond_cap must be a number in"):
        store_proposal_result(job.pk, result)
    assert (Proposal.objects.count(), Mask.objects.count(), Job.objects.get(pk=job.pk).state) == (0, 0, JobState.QUEUED)
    result["proposals"][0]["best_beyond_cap"] = 0.4
    store_proposal_result(job.pk, result)
    assert Proposal.objects.get().best_beyond_cap == 0.4


@pytest.mark.django_db
@pytest.mark.parametrize("semantic", [{"size": [HEIGHT, WIDTH], "counts": "not an rle"}, "everywhere",
                                      {"size": [HEIGHT + 1, WIDTH], "counts": ""}])
def test_a_proposal_with_a_bad_semantic_mask_is_refused_before_anything_is_written(
        project, django_capture_on_commit_callbacks, semantic):
    active_model(project)
    create_datapoints(project, [(image(project), "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [job] = request_proposals(project)
    result = proposal_result(project, job, {"red circle": [box_mask(0, 0, 8, 8)]})
    good = result["proposals"][0]["semantic_rle"]
    result["proposals"][0]["semantic_rle"] = semantic
    with pytest.raises(InvalidRLE):
        store_proposal_result(job.pk, result)
    assert (Proposal.objects.count(), Mask.objects.count(), Job.objects.get(pk=job.pk).state) == (0, 0, JobState.QUEUED)
    result["proposals"][0]["semantic_rle"] = good
    store_proposal_result(job.pk, result)
    assert rle_lib.area([Proposal.objects.get().semantic_rle]) == [64]


@pytest.mark.django_db
def test_a_media_error_fails_the_job_its_datapoints_and_the_media_item(project, django_capture_on_commit_callbacks):
    active_model(project)
    media = image(project)
    create_datapoints(project, [(media, "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [job] = request_proposals(project)
    store_proposal_result(job.pk, {"model_version": project.active_model.name, "proposals": [],
                                   "error": {"kind": "media", "message": "corrupt image: truncated"}})
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, "media: corrupt image: truncated")
    assert Datapoint.objects.get().state == DatapointState.FAILED
    assert MediaItem.objects.get().error == "corrupt image: truncated"


@pytest.fixture
def celery_worker_on_redis(transactional_db):
    """A real Celery worker thread consuming the gpu and cpu queues from Redis."""
    from celery.contrib.testing.worker import start_worker

    from dataengine.annotation import tasks  # noqa: F401  registers the store task
    from workers.app import app

    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url="redis://127.0.0.1:6379/15", task_always_eager=False)
    # Connections and producers cached by earlier tests point at the previous broker (memory://): drop them.
    app._pool, app.amqp._producer_pool = None, None
    with app.connection_for_write() as connection:
        for queue in ("gpu", "cpu"):
            connection.default_channel.queue_purge(queue)
    with start_worker(app, queues=["gpu", "cpu"], pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield app
    app.conf.update(saved)
    app._pool, app.amqp._producer_pool = None, None


def wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


@pytest.mark.redis
@pytest.mark.slow
def test_proposals_flow_through_redis_to_a_worker_and_a_replay_is_harmless(project, celery_worker_on_redis):
    from dataengine.annotation.proposing import enqueue_proposal_chain

    active_model(project)
    media = image(project)
    create_datapoints(project, [(media, "red circle"), (media, "green star")])
    [job] = request_proposals(project)  # commits: the chain goes to Redis
    wait_for(lambda: Job.objects.get(pk=job.pk).state != JobState.QUEUED)
    job.refresh_from_db()
    assert job.state == JobState.DONE, job.error
    routed = set(Datapoint.objects.values_list("state", flat=True))
    assert routed <= {DatapointState.MASK_VERIFICATION, DatapointState.EXHAUSTIVITY_VERIFICATION}
    proposals = Proposal.objects.filter(job=job)
    assert proposals.count() == 2 and all(p.model_version == project.active_model for p in proposals)
    counts = (Proposal.objects.count(), Mask.objects.count(), HumanTask.objects.count())
    payload = {k: v for k, v in job.payload.items() if k != "datapoints"}
    enqueue_proposal_chain(payload, job.pk)  # a redelivered message runs the chain again
    wait_for(lambda: Job.objects.get(pk=job.pk).attempts == 2)
    assert (Proposal.objects.count(), Mask.objects.count(), HumanTask.objects.count()) == counts


@pytest.mark.django_db
def test_a_refining_project_names_its_tracker_and_its_proposals_record_what_drew_them(
        project, django_capture_on_commit_callbacks, tmp_path):
    from dataengine.engine.services import promote_model_version, register_model_version
    from model.sam3.interactive import build_tiny_tracker, save_tracker_checkpoint
    from workers.sam3 import propose_masks_for

    tracker = save_tracker_checkpoint(*build_tiny_tracker(seed=1), tmp_path / "tracker",
                                      manifest={"model_version": "tracker-t1"})
    promote_model_version(project, register_model_version(name="sam3-refining", uri="preset:tiny",
                                                          manifest={"tracker_uri": str(tracker)}))
    project.config = {"refine_masks": True, "score_threshold": 0.0, "max_instances": 2}
    project.save()
    media = image(project)
    create_datapoints(project, [(media, "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [job] = request_proposals(project)
    assert job.payload["refine"] == {"uri": str(tracker)}
    assert job.payload["media_sha256"] == media.sha256
    result = propose_masks_for({k: v for k, v in job.payload.items() if k != "datapoints"})
    assert result["error"] is None and result["refined_with"] == {"version": "tracker-t1", "uri": str(tracker)}
    store_proposal_result(job.pk, result)
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.summary["refined_with"]["version"] == "tracker-t1"
    [proposal] = Proposal.objects.filter(job=job)
    assert proposal.instances and all(i["refined"]["tracker"] == "tracker-t1" for i in proposal.instances)
    assert [m.rle for m in Mask.objects.filter(proposal=proposal).order_by("id")] == [
        i["rle"] for i in proposal.instances]


@pytest.mark.django_db
def test_refining_is_part_of_the_job_key_and_needs_a_trained_tracker(project, django_capture_on_commit_callbacks):
    from dataengine.engine.services import promote_model_version, register_model_version

    active_model(project)
    [dp] = create_datapoints(project, [(image(project), "red circle")])
    with django_capture_on_commit_callbacks(execute=False):
        [plain] = request_proposals(project)
    assert plain.payload["refine"] is None
    project.config = {"refine_masks": True}
    project.save()
    Datapoint.objects.filter(pk=dp.pk).update(state=DatapointState.PENDING)
    with django_capture_on_commit_callbacks(execute=False):
        [refined] = request_proposals(project)
    assert refined.pk != plain.pk and refined.payload["refine"]["uri"]
    Datapoint.objects.filter(pk=dp.pk).update(state=DatapointState.PENDING)
    promote_model_version(project, register_model_version(name="sam3-untrained-tracker", uri="preset:tiny",
                                                          manifest={"tracker_uri": "preset:tiny-tracker"}))
    with pytest.raises(InvalidInput, match="refine_masks needs a trained click tracker"):
        request_proposals(project)
    project.config = {"refine_masks": "yes"}
    project.save()
    with pytest.raises(ValueError, match="refine_masks must be true or false"):
        request_proposals(project)
