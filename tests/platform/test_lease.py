"""The human task queue under concurrency: never two annotators on one task; expired leases come back."""
import datetime as dt
import json
import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from dataengine.accounts.models import Role
from dataengine.accounts.services import add_member
from dataengine.annotation import services
from dataengine.annotation.models import HumanTask, TaskKind, TaskState
from dataengine.errors import Conflict, NotAllowed
from tests.platform.factories import box_mask, image, propose

pytestmark = [pytest.mark.pg]


def queued_mask_tasks(project, n: int):
    media = image(project)
    propose(project, media, {"red circle": [box_mask(i % 60, 0, i % 60 + 2, 2) for i in range(n)]})
    return HumanTask.objects.filter(project=project, kind=TaskKind.MASK_VERIFICATION)


@pytest.mark.django_db(transaction=True)
def test_twenty_annotators_leasing_at_once_never_get_the_same_task(project, make_user):
    tasks = queued_mask_tasks(project, 60)
    annotators = [make_user(f"annotator{i}") for i in range(20)]
    for user in annotators:
        add_member(project, user, Role.ANNOTATOR)
    leased: list[tuple[int, int]] = []
    lock, start = threading.Lock(), threading.Barrier(len(annotators))

    def work(user):
        try:
            start.wait()
            while True:
                task = services.lease_next_task(project, user, TaskKind.MASK_VERIFICATION)
                if task is None:
                    return
                with lock:
                    leased.append((task.pk, user.pk))
                services.submit_mask_verification(task.pk, user=user, lease_token=task.lease_token,
                                                  decision="accept", seconds=1)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in annotators]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    served = Counter(task_id for task_id, _ in leased)
    assert sorted(served) == sorted(tasks.values_list("id", flat=True))
    assert max(served.values()) == 1, "a task was leased twice"
    assert len({user for _, user in leased}) > 1, "the work should spread over several annotators"
    assert not HumanTask.objects.filter(kind=TaskKind.MASK_VERIFICATION).exclude(state=TaskState.DONE).exists()


@pytest.mark.django_db
def test_the_highest_priority_task_comes_first(project, alice):
    tasks = list(queued_mask_tasks(project, 3).order_by("id"))
    HumanTask.objects.filter(pk=tasks[2].pk).update(priority=99)
    assert services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION).pk == tasks[2].pk


@pytest.mark.django_db
def test_an_annotator_gets_their_own_unexpired_lease_back(project, alice, bob):
    queued_mask_tasks(project, 3)
    first = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    again = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    other = services.lease_next_task(project, bob, TaskKind.MASK_VERIFICATION)
    assert (again.pk, again.lease_token) == (first.pk, first.lease_token)
    assert other.pk != first.pk


@pytest.mark.django_db
def test_an_expired_lease_returns_to_the_queue_and_the_old_holder_is_refused(project, alice, bob):
    queued_mask_tasks(project, 1)
    task = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    assert services.lease_next_task(project, bob, TaskKind.MASK_VERIFICATION) is None
    HumanTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    taken_over = services.lease_next_task(project, bob, TaskKind.MASK_VERIFICATION)
    assert taken_over.pk == task.pk and taken_over.holder == bob
    assert taken_over.lease_token == task.lease_token + 1
    with pytest.raises(NotAllowed):
        services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision="accept",
                                          seconds=1)
    services.submit_mask_verification(task.pk, user=bob, lease_token=taken_over.lease_token, decision="reject",
                                      seconds=1)
    assert HumanTask.objects.get(pk=task.pk).completed_by == bob


@pytest.mark.django_db
def test_the_sweep_requeues_only_expired_leases(project, alice, bob):
    queued_mask_tasks(project, 2)
    expired = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    live = services.lease_next_task(project, bob, TaskKind.MASK_VERIFICATION)
    HumanTask.objects.filter(pk=expired.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.requeue_expired_leases() == 1
    assert HumanTask.objects.get(pk=expired.pk).state == TaskState.QUEUED
    assert HumanTask.objects.get(pk=live.pk).state == TaskState.LEASED
    with pytest.raises(Conflict, match="expired"):
        services.submit_mask_verification(expired.pk, user=alice, lease_token=expired.lease_token,
                                          decision="accept", seconds=1)


@pytest.mark.django_db
def test_a_stale_lease_token_from_an_older_lease_is_a_conflict(project, alice):
    queued_mask_tasks(project, 1)
    old = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    services.release_task(old.pk, alice, old.lease_token)
    new = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    assert new.pk == old.pk
    with pytest.raises(Conflict, match="stale"):
        services.submit_mask_verification(old.pk, user=alice, lease_token=old.lease_token, decision="accept",
                                          seconds=1)


@pytest.mark.django_db
def test_heartbeat_extends_the_lease(project, alice):
    queued_mask_tasks(project, 1)
    task = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION, lease_seconds=5)
    extended = services.heartbeat(task.pk, alice, task.lease_token, lease_seconds=600)
    assert extended.lease_expires_at > task.lease_expires_at + dt.timedelta(seconds=500)


@pytest.mark.django_db
def test_a_completed_task_cannot_be_submitted_twice(project, alice):
    queued_mask_tasks(project, 1)
    task = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
    services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision="accept", seconds=1)
    with pytest.raises(Conflict, match="already done"):
        services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision="reject",
                                          seconds=1)


@pytest.mark.django_db
def test_the_one_statement_lease_returns_what_the_serializer_would(project, alice, bob):
    from dataengine.annotation.api.serializers import TaskSerializer
    from dataengine.annotation.queries import lease_next_task_json

    media = image(project)
    propose(project, media, {"red circle": [box_mask(0, 0, 4, 4), box_mask(8, 8, 12, 12)], "green star": []})
    for kind in (TaskKind.MASK_VERIFICATION, TaskKind.EXHAUSTIVITY_VERIFICATION):
        fast = lease_next_task_json(project.pk, alice.pk, kind)
        expected = TaskSerializer(HumanTask.objects.get(pk=fast["id"])).data
        assert fast == json.loads(json.dumps(expected)), kind
        again = lease_next_task_json(project.pk, alice.pk, kind)  # a held lease comes back unchanged
        assert (again["id"], again["lease_token"]) == (fast["id"], fast["lease_token"])
    assert lease_next_task_json(project.pk, bob.pk, TaskKind.EXHAUSTIVITY_VERIFICATION) is None
    HumanTask.objects.filter(holder=alice, kind=TaskKind.EXHAUSTIVITY_VERIFICATION).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    taken = lease_next_task_json(project.pk, bob.pk, TaskKind.EXHAUSTIVITY_VERIFICATION)
    assert taken is not None and taken["lease_token"] == 2


@pytest.mark.django_db
def test_a_correction_task_lists_the_rejected_masks_in_both_lease_paths(project, alice):
    from dataengine.annotation.api.serializers import TaskSerializer
    from dataengine.annotation.queries import lease_next_task_json

    dp = propose(project, image(project), {"red circle": [box_mask(0, 0, 4, 4), box_mask(8, 8, 12, 12)]})["red circle"]
    for decision in ("accept", "reject"):
        mv = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
        services.submit_mask_verification(mv.pk, user=alice, lease_token=mv.lease_token, decision=decision, seconds=1)
    ev = services.lease_next_task(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    services.submit_exhaustivity_verification(ev.pk, user=alice, lease_token=ev.lease_token, decision="reject",
                                              seconds=1)
    fast = lease_next_task_json(project.pk, alice.pk, TaskKind.CORRECTION)
    assert fast == json.loads(json.dumps(TaskSerializer(HumanTask.objects.get(pk=fast["id"])).data))
    accepted, rejected = dp.masks.order_by("id")
    assert [m["id"] for m in fast["masks"]] == [accepted.pk]
    assert [(m["id"], m["state"]) for m in fast["candidates"]] == [(rejected.pk, "rejected")]
