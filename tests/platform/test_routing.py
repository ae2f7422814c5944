"""Phase 1: proposal → human MV per mask → human EV → correction when not exhaustive → accepted or rejected."""
import pytest

from dataengine.annotation import services
from dataengine.annotation.api.serializers import TaskSerializer
from dataengine.errors import Conflict, InvalidInput
from dataengine.annotation.models import HumanTask, Mask, MaskState, TaskKind, TaskState, Verdict
from dataengine.concepts.models import DatapointState, FinalLabel
from dataengine.engine.models import AuditEvent
from model import rle as rle_lib
from tests.platform.factories import box_mask, image, propose

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def lease(project, user, kind):
    task = services.lease_next_task(project, user, kind)
    assert task is not None, f"expected a {kind} task"
    return task


def test_a_proposal_with_masks_queues_one_mask_verification_per_mask(project):
    dp = propose(project, image(project), {"red circle": [box_mask(0, 0, 10, 10), box_mask(20, 20, 30, 30)]})["red circle"]
    assert dp.state == DatapointState.MASK_VERIFICATION
    tasks = HumanTask.objects.filter(datapoint=dp)
    assert [t.kind for t in tasks] == [TaskKind.MASK_VERIFICATION] * 2
    assert {t.mask_id for t in tasks} == set(Mask.objects.filter(datapoint=dp).values_list("id", flat=True))


def test_a_proposal_without_masks_goes_straight_to_exhaustivity(project):
    dp = propose(project, image(project), {"green star": []})["green star"]
    assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION
    assert HumanTask.objects.get(datapoint=dp).kind == TaskKind.EXHAUSTIVITY_VERIFICATION


def test_exhaustive_negative_is_accepted_as_a_verified_negative(project, alice):
    dp = propose(project, image(project), {"green star": []})["green star"]
    task = lease(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    outcome = services.submit_exhaustivity_verification(task.pk, user=alice, lease_token=task.lease_token,
                                                        decision="accept", seconds=12.0)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.is_instance_exhaustive) == ("accepted", FinalLabel.NEGATIVE, True)
    assert outcome.task.state == TaskState.DONE
    verdict = Verdict.objects.get(datapoint=dp)
    assert (verdict.user, verdict.seconds, verdict.decision) == (alice, 12.0, "accept")


def test_last_mask_verification_queues_exhaustivity_and_accepted_masks_make_a_positive(project, alice, bob):
    dp = propose(project, image(project), {"red circle": [box_mask(0, 0, 10, 10), box_mask(20, 20, 30, 30)]})["red circle"]
    first, second = lease(project, alice, TaskKind.MASK_VERIFICATION), lease(project, bob, TaskKind.MASK_VERIFICATION)
    services.submit_mask_verification(first.pk, user=alice, lease_token=first.lease_token, decision="accept", seconds=5)
    assert not HumanTask.objects.filter(datapoint=dp, kind=TaskKind.EXHAUSTIVITY_VERIFICATION).exists()
    services.submit_mask_verification(second.pk, user=bob, lease_token=second.lease_token, decision="reject", seconds=4)
    ev = lease(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    assert ev.datapoint_id == dp.pk
    services.submit_exhaustivity_verification(ev.pk, user=alice, lease_token=ev.lease_token, decision="accept",
                                              seconds=10)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE)
    assert sorted(Mask.objects.filter(datapoint=dp).values_list("state", flat=True)) == ["accepted", "rejected"]


@pytest.mark.parametrize("decision", ["flag_label", "whole_image"])
def test_flagged_or_whole_image_mask_takes_the_phrase_out_and_cancels_its_other_tasks(project, alice, decision):
    dp = propose(project, image(project), {"person": [box_mask(0, 0, 10, 10), box_mask(20, 20, 30, 30)]})["person"]
    task = lease(project, alice, TaskKind.MASK_VERIFICATION)
    services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision=decision, seconds=3)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label) == (DatapointState.REJECTED, FinalLabel.REJECTED)
    assert decision in dp.reason
    assert set(HumanTask.objects.filter(datapoint=dp).values_list("state", flat=True)) == {"done", "cancelled"}


@pytest.mark.parametrize("decision", ["reject", "reject_unseparated"])
def test_not_exhaustive_goes_to_correction(project, alice, decision):
    dp = propose(project, image(project), {"blue square": []})["blue square"]
    ev = lease(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    services.submit_exhaustivity_verification(ev.pk, user=alice, lease_token=ev.lease_token, decision=decision, seconds=9)
    dp.refresh_from_db()
    assert dp.state == DatapointState.CORRECTION
    assert HumanTask.objects.get(datapoint=dp, kind=TaskKind.CORRECTION).state == TaskState.QUEUED


@pytest.mark.parametrize("decision", ["flag_label", "whole_image", "ungroundable"])
def test_vague_or_flagged_phrase_is_rejected_at_exhaustivity(project, alice, decision):
    dp = propose(project, image(project), {"it": []})["it"]
    ev = lease(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    services.submit_exhaustivity_verification(ev.pk, user=alice, lease_token=ev.lease_token, decision=decision, seconds=2)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label) == (DatapointState.REJECTED, FinalLabel.REJECTED)


def correction_task(project, user, masks_by_phrase, accept_all=True):
    dp = propose(project, image(project), masks_by_phrase)[next(iter(masks_by_phrase))]
    for _ in masks_by_phrase[next(iter(masks_by_phrase))]:
        mv = lease(project, user, TaskKind.MASK_VERIFICATION)
        services.submit_mask_verification(mv.pk, user=user, lease_token=mv.lease_token,
                                          decision="accept" if accept_all else "reject", seconds=1)
    ev = lease(project, user, TaskKind.EXHAUSTIVITY_VERIFICATION)
    services.submit_exhaustivity_verification(ev.pk, user=user, lease_token=ev.lease_token, decision="reject", seconds=1)
    dp.refresh_from_db()
    return dp, lease(project, user, TaskKind.CORRECTION)


def test_correction_keeps_edits_adds_and_deletes_to_reach_the_final_set(project, alice):
    dp, task = correction_task(project, alice, {"yellow triangle": [box_mask(0, 0, 10, 10), box_mask(20, 20, 30, 30)]})
    keep, edit = Mask.objects.filter(datapoint=dp, state=MaskState.ACCEPTED).order_by("id")
    edited, added, group = box_mask(20, 20, 32, 32), box_mask(40, 5, 50, 15), box_mask(0, 30, 20, 40)
    services.submit_correction(task.pk, user=alice, lease_token=task.lease_token, datapoint_revision=dp.revision,
                               outcome="complete", seconds=60, masks=[
                                   services.MaskInput(mask_id=keep.pk),
                                   services.MaskInput(mask_id=edit.pk, rle=rle_lib.encode(edited)),
                                   services.MaskInput(rle=rle_lib.encode(added)),
                                   services.MaskInput(rle=rle_lib.encode(group), iscrowd=True),
                               ])
    dp.refresh_from_db()
    final = Mask.objects.filter(datapoint=dp, state=MaskState.ACCEPTED).order_by("id")
    assert len(final) == 4
    assert (dp.state, dp.final_label) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE)
    assert (dp.is_instance_exhaustive, dp.is_pixel_exhaustive) == (False, True)  # a group mask is present
    edited_mask = final.get(replaces=edit)
    assert (edited_mask.source, edited_mask.created_by) == ("human", alice)
    assert (rle_lib.decode(edited_mask.rle) == edited).all()
    assert Mask.objects.get(pk=edit.pk).state == MaskState.DELETED


def test_correction_that_drops_every_mask_makes_a_negative(project, alice):
    dp, task = correction_task(project, alice, {"red star": [box_mask(0, 0, 10, 10)]})
    services.submit_correction(task.pk, user=alice, lease_token=task.lease_token, datapoint_revision=dp.revision,
                               outcome="complete", masks=[], seconds=10)
    dp.refresh_from_db()
    assert (dp.final_label, dp.is_instance_exhaustive) == (FinalLabel.NEGATIVE, True)


def test_correction_can_reject_a_vague_phrase(project, alice):
    dp, task = correction_task(project, alice, {"thing": []})
    services.submit_correction(task.pk, user=alice, lease_token=task.lease_token, datapoint_revision=dp.revision,
                               outcome="reject_phrase", masks=[], seconds=5, reason="too vague")
    dp.refresh_from_db()
    assert (dp.state, dp.final_label) == (DatapointState.REJECTED, FinalLabel.REJECTED)
    assert "too vague" in dp.reason


def test_a_correction_against_an_old_revision_is_refused_and_changes_nothing(project, alice):
    dp, task = correction_task(project, alice, {"blue circle": [box_mask(0, 0, 10, 10)]})
    before = list(Mask.objects.filter(datapoint=dp).values_list("id", "state"))
    with pytest.raises(Conflict):
        services.submit_correction(task.pk, user=alice, lease_token=task.lease_token,
                                   datapoint_revision=dp.revision - 1, outcome="complete", masks=[], seconds=5)
    assert list(Mask.objects.filter(datapoint=dp).values_list("id", "state")) == before
    assert HumanTask.objects.get(pk=task.pk).state == TaskState.LEASED


def test_a_correction_with_a_malformed_mask_is_refused_before_anything_is_written(project, alice):
    dp, task = correction_task(project, alice, {"green circle": [box_mask(0, 0, 10, 10)]})
    good = rle_lib.encode(box_mask(1, 1, 5, 5))
    with pytest.raises(InvalidInput, match=r"masks\[1\].rle"):
        services.submit_correction(task.pk, user=alice, lease_token=task.lease_token, datapoint_revision=dp.revision,
                                   outcome="complete", seconds=5,
                                   masks=[services.MaskInput(rle=good), services.MaskInput(rle={"size": [48, 64],
                                                                                               "counts": "zz"})])
    assert Mask.objects.filter(datapoint=dp, source="human").count() == 0


def test_a_correction_shows_the_rejected_masks_and_restores_or_edits_them_by_id(project, alice):
    proposed = [box_mask(0, 0, 10, 10), box_mask(20, 20, 30, 30), box_mask(40, 0, 50, 10)]
    dp, task = correction_task(project, alice, {"purple square": proposed}, accept_all=False)
    good, near_miss, wrong = Mask.objects.filter(datapoint=dp).order_by("id")
    assert [m["id"] for m in TaskSerializer(task).data["candidates"]] == [good.pk, near_miss.pk, wrong.pk]
    fixed = box_mask(20, 20, 33, 33)
    outcome = services.submit_correction(
        task.pk, user=alice, lease_token=task.lease_token, datapoint_revision=dp.revision, outcome="complete",
        seconds=30, masks=[services.MaskInput(mask_id=good.pk), services.MaskInput(mask_id=near_miss.pk,
                                                                                   rle=rle_lib.encode(fixed))])
    final = Mask.objects.filter(datapoint=dp, state=MaskState.ACCEPTED).order_by("id")
    assert final[0] == good and final[0].source == "model"  # restored, not redrawn
    assert (final[1].replaces, final[1].source) == (near_miss, "human")
    assert (rle_lib.decode(final[1].rle) == fixed).all()
    assert Mask.objects.get(pk=wrong.pk).state == MaskState.REJECTED  # not listed: stays rejected
    assert (outcome.datapoint.final_label, len(final)) == (FinalLabel.POSITIVE, 2)
    audit = AuditEvent.objects.filter(action="task.correction").latest("id")
    assert {k: audit.data[k] for k in ("kept", "restored", "edited", "added", "deleted")} == {
        "kept": 0, "restored": 1, "edited": 1, "added": 0, "deleted": 0}


def test_a_correction_may_not_restore_a_mask_of_another_datapoint(project, alice):
    dp, task = correction_task(project, alice, {"orange star": [box_mask(0, 0, 10, 10)]}, accept_all=False)
    other = propose(project, image(project, "other.png", seed=1), {"orange star": [box_mask(5, 5, 9, 9)]})
    foreign = Mask.objects.get(datapoint=other["orange star"])
    with pytest.raises(InvalidInput, match="not an accepted or rejected mask of this datapoint"):
        services.submit_correction(task.pk, user=alice, lease_token=task.lease_token, datapoint_revision=dp.revision,
                                   outcome="complete", seconds=5, masks=[services.MaskInput(mask_id=foreign.pk)])
    assert HumanTask.objects.get(pk=task.pk).state == TaskState.LEASED
    assert not Mask.objects.filter(datapoint=dp, state=MaskState.ACCEPTED).exists()
