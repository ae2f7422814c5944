"""Phase 2: the AI verifiers judge every proposal; humans get only what the machines cannot settle."""
import pytest

from dataengine.annotation import services
from dataengine.annotation.models import HumanTask, Mask, TaskKind, TaskState, Verdict, VerdictKind
from dataengine.annotation.verifying import Thresholds, decide_route, sampled_for_audit, store_verifier_result, \
    submit_review, verifier_precision
from dataengine.concepts.models import DatapointState, FinalLabel
from dataengine.engine.config import ProjectConfig
from dataengine.engine.models import Job, JobState, ModelKind
from dataengine.engine.services import register_model_version
from model import rle as rle_lib
from tests.platform.factories import box_mask, image, propose
from verifiers.calibration import PREFERRED_ELSEWHERE, UNBOXED_EXPLAINED

pytestmark = [pytest.mark.pg, pytest.mark.django_db]

CALIBRATED = {"target_precision": 0.98, "thresholds": {"mv": 0.8, "ev": 0.9, "ev_zero": 0.9}}


@pytest.fixture
def phase2(project):
    verifier = register_model_version(name="verifier-test", uri="preset:tiny-verifier", kind=ModelKind.VERIFIER,
                                      manifest=CALIBRATED)
    project.phase, project.active_verifier, project.config = 2, verifier, {"audit_rate": 0.0}
    project.save()
    return project


def mv_probs(accept: float) -> dict:
    """P(accept) = ``accept``; the rest on reject."""
    return {"accept": accept, "accept_as_text": 0.0, "flag_label": 0.0, "whole_image": 0.0, "reject": 1 - accept}


def ev_probs(accept: float, **others) -> dict:
    probs = {"accept": accept, "reject": 0.0, "reject_unseparated": 0.0, "flag_label": 0.0, "whole_image": 0.0,
             "ungroundable": 0.0, **others}
    left = 1 - sum(probs.values())
    probs["reject"] += left
    return probs


def verify(project, datapoint, mv_accept: list[float], ev: dict, presence: float = 0.9):
    job = Job.objects.get(task_name="verifiers.verify_datapoint.v1", payload__datapoint=datapoint.pk,
                          payload__ev_only=False)
    masks = job.payload["masks"]
    result = {"task": "verifiers.verify_datapoint.v1", "model_version": project.active_verifier.name,
              "template_versions": {"mv": "mv.v1", "ev": "ev.v1"},
              "mv": [{"mask_id": m["id"], "probabilities": mv_probs(p)} for m, p in zip(masks, mv_accept)],
              "ev": {"mask_ids": [m["id"] for m, p in zip(masks, mv_accept) if p >= 0.8], "probabilities": ev},
              "presence_score": presence, "error": None}
    return store_verifier_result(job.pk, result)


def verify_exhaustivity(project, datapoint, accept: float):
    """The verifier's answer to the EV it is asked after a human check (on the masks the human accepted)."""
    job = Job.objects.get(task_name="verifiers.verify_datapoint.v1", payload__datapoint=datapoint.pk,
                          payload__ev_only=True)
    result = {"task": job.task_name, "model_version": project.active_verifier.name,
              "template_versions": {"mv": "mv.v1", "ev": "ev.v1"}, "mv": [], "presence_score": 0.9, "error": None,
              "ev": {"mask_ids": [m["id"] for m in job.payload["masks"]], "probabilities": ev_probs(accept)}}
    return store_verifier_result(job.pk, result)


def check_masks(project, user, decisions: list[str]):
    for decision in decisions:
        task = services.lease_next_task(project, user, TaskKind.MASK_VERIFICATION)
        services.submit_mask_verification(task.pk, user=user, lease_token=task.lease_token, decision=decision,
                                          seconds=2)


def proposed(project, masks, phrase="red circle"):
    dp = propose(project, image(project), {phrase: masks})[phrase]
    assert dp.state == DatapointState.AI_VERIFICATION
    assert not HumanTask.objects.filter(datapoint=dp).exists(), "no human task before the verifiers ran"
    return dp


def test_confident_verdicts_accept_without_a_human_and_record_the_verifier(phase2):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.95, 0.1], ev_probs(0.97))
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE, True)
    assert sorted(Mask.objects.filter(datapoint=dp).values_list("state", flat=True)) == ["accepted", "rejected"]
    assert not HumanTask.objects.filter(datapoint=dp).exists()
    verdicts = Verdict.objects.filter(datapoint=dp, by_ai=True)
    assert verdicts.count() == 3
    assert {(v.verifier_version.name, v.template_version) for v in verdicts} == {("verifier-test", "mv.v1"),
                                                                               ("verifier-test", "ev.v1")}


def test_a_confident_verified_negative_needs_no_human(phase2):
    dp = proposed(phase2, [], phrase="green star")
    verify(phase2, dp, [], ev_probs(0.99), presence=0.02)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE)


def test_a_negative_the_verifier_leans_to_but_cannot_certify_gets_a_human_exhaustivity_check(phase2, alice):
    dp = proposed(phase2, [], phrase="green star")
    verify(phase2, dp, [], ev_probs(0.85), presence=0.02)
    dp.refresh_from_db()
    assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and "not confident the concept is absent" in dp.reason
    task = services.lease_next_task(phase2, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    assert task.datapoint_id == dp.pk
    services.submit_exhaustivity_verification(task.pk, user=alice, lease_token=task.lease_token, decision="accept",
                                              seconds=24)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, False)


def test_masks_the_ai_kept_but_cannot_certify_get_human_mask_checks_then_exhaustivity(phase2, alice):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.95, 0.01], ev_probs(0.6))
    dp.refresh_from_db()
    assert dp.state == DatapointState.MASK_VERIFICATION and "EV not confident" in dp.reason
    # P(accept) 0.01 <= 1 - target precision: the AI is sure enough to drop it unseen.
    assert sorted(Mask.objects.filter(datapoint=dp).values_list("state", flat=True)) == ["proposed", "rejected"]
    task = services.lease_next_task(phase2, alice, TaskKind.MASK_VERIFICATION)
    assert task.mask.state == "proposed" and not services.lease_next_task(phase2, alice, TaskKind.CORRECTION)
    services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision="accept", seconds=2)
    dp.refresh_from_db()
    assert dp.state == DatapointState.AI_VERIFICATION, "the verifier may settle EV on the checked masks"
    verify_exhaustivity(phase2, dp, 0.6)  # below the EV threshold 0.9: a human looks
    task = services.lease_next_task(phase2, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    outcome = services.submit_exhaustivity_verification(task.pk, user=alice, lease_token=task.lease_token,
                                                        decision="reject", seconds=24)
    assert outcome.datapoint.state == DatapointState.CORRECTION  # a human found more: correct it


def test_a_mask_the_ai_rejects_without_being_sure_still_gets_a_human_look(phase2, alice):
    # MV rejects both (P(accept) 0.3 and 0.1), EV then judges zero boxes and says the concept is present:
    # a calibrated MV certifies good masks, but its rejections are not that sure, and a good mask dropped unseen
    # would cost a correction job.
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.3, 0.1], ev_probs(0.05))
    dp.refresh_from_db()
    assert dp.state == DatapointState.MASK_VERIFICATION, "a human check, not a correction from scratch"
    assert sorted(Mask.objects.filter(datapoint=dp).values_list("state", flat=True)) == ["proposed", "proposed"]
    check_masks(phase2, alice, ["accept", "reject"])
    verify_exhaustivity(phase2, dp, 0.5)
    task = services.lease_next_task(phase2, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    outcome = services.submit_exhaustivity_verification(task.pk, user=alice, lease_token=task.lease_token,
                                                        decision="accept", seconds=24)
    assert (outcome.datapoint.state, outcome.datapoint.final_label) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE)


def test_after_a_human_check_the_verifier_settles_exhaustivity_on_the_masks_the_human_accepted(phase2, alice):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.6, 0.4], ev_probs(0.2))  # nothing certified, no failure sign
    check_masks(phase2, alice, ["accept", "reject"])
    job = Job.objects.get(payload__datapoint=dp.pk, payload__ev_only=True)
    accepted = Mask.objects.get(datapoint=dp, state="accepted")
    assert [m["id"] for m in job.payload["masks"]] == [accepted.pk], "EV judges exactly what the human accepted"
    verify_exhaustivity(phase2, dp, 0.95)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE, True)
    assert not HumanTask.objects.filter(datapoint=dp, kind=TaskKind.EXHAUSTIVITY_VERIFICATION).exists()
    verdict = Verdict.objects.filter(datapoint=dp, by_ai=True, kind=VerdictKind.EXHAUSTIVITY).latest("id")
    assert "after the human check" in verdict.note and verdict.verifier_version.name == "verifier-test"
    assert verify_exhaustivity(phase2, dp, 0.1).attempts == 2, "a replay changes nothing"
    dp.refresh_from_db()
    assert dp.state == DatapointState.ACCEPTED


def test_when_the_human_rejects_every_mask_the_verifier_may_certify_the_absence(phase2, alice):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    dp.proposals.update(presence_score=0.2)  # SAM 3 and the verifier agree it is likely absent: no failure sign
    verify(phase2, dp, [0.5], ev_probs(0.3), presence=0.2)
    check_masks(phase2, alice, ["reject"])
    verify_exhaustivity(phase2, dp, 0.93)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)


@pytest.mark.parametrize("sam3_presence, ai_presence, certified", [(0.2, 0.05, True), (0.9, 0.6, False)])
def test_an_absence_both_models_contradict_goes_to_a_human_at_routing(phase2, sam3_presence, ai_presence,
                                                                       certified):
    phase2.active_verifier.manifest = SPLIT
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    dp.proposals.update(presence_score=sam3_presence)
    verify(phase2, dp, [0.05], ev_probs(0.95), presence=ai_presence)  # MV sure the mask is wrong; EV: absent
    dp.refresh_from_db()
    if certified:
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:
        assert not dp.auto_accepted and dp.failure_signs == ["absence_against_presence"]
        assert "absence claimed though SAM 3 (0.90) and the verifier (0.60) both see the concept" in dp.reason


def rejected_in_a_check(project, user, ev_after_check: float, sam3_presence: float = 0.9):
    """A datapoint whose only proposal routing kept (a positive claim: no absence sign yet) and a human check
    rejected, then the verifier's EV on zero boxes after the check (``ev_after_check``: P(absent))."""
    dp = proposed(project, [box_mask(0, 0, 20, 20)], phrase="green star")
    dp.proposals.update(presence_score=sam3_presence)
    verify(project, dp, [0.9], ev_probs(0.6), presence=sam3_presence)
    check_masks(project, user, ["reject"])
    verify_exhaustivity(project, dp, ev_after_check)
    dp.refresh_from_db()
    return dp


@pytest.mark.parametrize("sam3_presence, ev_after_check, certified", [(0.2, 0.95, True), (0.9, 0.95, True),
                                                                      (0.9, 0.45, False)])
def test_after_a_check_an_absence_both_models_contradict_goes_to_a_human(phase2, alice, sam3_presence,
                                                                         ev_after_check, certified):
    """The check rejected the only mask; the zero-box EV's P(accept) is P(absent), its presence the rest."""
    phase2.active_verifier.manifest = {"target_precision": 0.98, "with_sam3": {"ev_zero_after_check": {
        "p_accept_logit": 0.0, "bias": 5.0}},  # a claim that ignores EV: P(absent) 0.993 whatever it says
        "thresholds": {"mv": 0.8, "ev": 0.98, "ev_zero": 0.99, "ev_zero_after_check": 0.98}}
    phase2.active_verifier.save()
    dp = rejected_in_a_check(phase2, alice, ev_after_check, sam3_presence)
    if certified:
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and not dp.auto_accepted
        assert "absence claimed though SAM 3 (0.90) and the verifier (0.55) both see the concept" in dp.reason


def seen_split(**seen_thresholds) -> dict:
    """SPLIT with the absence claims certified apart where both models see the concept; each seen claim given a
    threshold ignores EV (P(absent) 0.993), so only its own threshold can certify it."""
    names = ("ev_zero", "ev_zero_after_check", "ev_zero_unboxed_explained", "ev_zero_after_check_unboxed_explained")
    thresholds = {f"{name}_seen": seen_thresholds.get(f"{name}_seen") for name in names}
    return {**SPLIT, "thresholds": {**SPLIT["thresholds"], **thresholds},
            "with_sam3": {name: {"p_accept_logit": 0.0, "bias": 5.0} for name, t in thresholds.items() if t}}


@pytest.mark.parametrize("seen_threshold, certified", [(0.97, True), (None, False)])
def test_a_version_that_certifies_seen_absences_apart_settles_them_on_their_own_threshold(phase2, seen_threshold,
                                                                                          certified):
    phase2.active_verifier.manifest = seen_split(ev_zero_unboxed_explained_seen=seen_threshold)
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    verify(phase2, dp, [0.05], ev_probs(0.4), presence=0.6)  # SAM 3 0.9, EV 0.6: both see it; MV sure the mask is off
    dp.refresh_from_db()
    assert "absence_against_presence" not in dp.failure_signs, "the version certifies such claims itself"
    if certified:
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:
        assert not dp.auto_accepted and "verifier not calibrated for the target precision (not present)" in dp.reason


@pytest.mark.parametrize("ev_after_check, certified", [(0.45, True), (0.95, False)])
def test_after_a_check_a_seen_absence_is_settled_on_its_own_threshold(phase2, alice, ev_after_check, certified):
    """EV 0.45 after the check: both models see the concept, so the seen claim (here sure) decides; EV 0.95: the
    ordinary claim, whose threshold 0.99 EV alone does not reach."""
    phase2.active_verifier.manifest = seen_split(ev_zero_after_check_seen=0.97)
    phase2.active_verifier.save()
    dp = rejected_in_a_check(phase2, alice, ev_after_check)
    if certified:
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION
        assert "0.95 < 0.99 on ev_zero_after_check" in dp.reason


def test_absence_is_claimed_at_routing_and_after_a_check_on_each_claims_own_threshold(phase2, alice):
    # After a human rejected every mask mostly negatives remain: one P(accept) is right more often there.
    phase2.active_verifier.manifest = {"target_precision": 0.98, "thresholds": {
        "mv": 0.8, "ev": 0.9, "ev_zero": 0.99, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    dp.proposals.update(presence_score=0.2)
    verify(phase2, dp, [0.5], ev_probs(0.95), presence=0.05)
    dp.refresh_from_db()
    assert dp.state == DatapointState.MASK_VERIFICATION and "0.95 < 0.99" in dp.reason
    check_masks(phase2, alice, ["reject"])
    verify_exhaustivity(phase2, dp, 0.95)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)


# Each EV claim certified twice: where MV is sure every proposal the question leaves unboxed is wrong, and elsewhere.
SPLIT = {"target_precision": 0.98, "drop_precision": 0.995, "thresholds": {
    "mv": 0.8, "mv_reject": 0.1, "ev": 0.99, "ev_zero": 0.99, "ev_zero_after_check": 0.99,
    "ev_unboxed_explained": 0.9, "ev_zero_unboxed_explained": 0.9, "ev_zero_after_check_unboxed_explained": 0.9}}


@pytest.mark.parametrize("proposal_p_accept, certified", [(0.05, True), (0.5, False)])
def test_absence_at_routing_is_certified_on_the_threshold_of_whether_mv_is_sure_every_proposal_is_wrong(
        phase2, proposal_p_accept, certified):
    phase2.active_verifier.manifest = SPLIT
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    dp.proposals.update(presence_score=0.2)
    verify(phase2, dp, [proposal_p_accept], ev_probs(0.95), presence=0.05)
    dp.refresh_from_db()
    if certified:  # 0.95 meets ev_zero_unboxed_explained (0.9): nothing SAM 3 proposed is the concept
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:  # a proposal MV is unsure of: the stricter ev_zero (0.99) applies, and a human checks it
        assert dp.state == DatapointState.MASK_VERIFICATION and "P(accept) 0.95 < 0.99" in dp.reason


@pytest.mark.parametrize("second_p_accept, certified", [(0.05, True), (0.5, False)])
def test_after_a_check_exhaustivity_is_certified_on_the_threshold_of_what_the_check_left_unboxed(
        phase2, alice, second_p_accept, certified):
    phase2.active_verifier.manifest = SPLIT
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.6, second_p_accept], ev_probs(0.2))
    # The human accepts the first mask and rejects the second where it was shown (MV unsure of it).
    check_masks(phase2, alice, ["accept"] + (["reject"] if second_p_accept > 0.1 else []))
    verify_exhaustivity(phase2, dp, 0.95)
    dp.refresh_from_db()
    if certified:  # left unboxed: only the proposal MV is sure is wrong -> ev_unboxed_explained (0.9)
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE, True)
    else:  # the human rejected a proposal MV was unsure of: maybe a badly drawn instance -> ev (0.99)
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and "0.95 < 0.99" in dp.reason


def test_after_a_check_the_verifier_is_not_asked_where_its_claim_has_no_threshold(phase2, alice):
    phase2.active_verifier.manifest = {**SPLIT, "thresholds": {**SPLIT["thresholds"], "ev": None}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.6, 0.5], ev_probs(0.2))
    check_masks(phase2, alice, ["accept", "reject"])  # a rejected proposal outside the accepted mask: "ev", none
    dp.refresh_from_db()
    assert not Job.objects.filter(payload__datapoint=dp.pk, payload__ev_only=True).exists()
    assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION
    assert dp.reason == "verifier not calibrated for the target precision (ev)"


def test_after_a_check_a_rejected_part_of_the_accepted_mask_explains_itself(phase2, alice):
    phase2.active_verifier.manifest = SPLIT
    phase2.active_verifier.save()
    # The second proposal is the left half of the first: a part of that instance, not a sign of another one.
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(0, 0, 10, 20)])
    verify(phase2, dp, [0.6, 0.5], ev_probs(0.2))
    check_masks(phase2, alice, ["accept", "reject"])
    verify_exhaustivity(phase2, dp, 0.95)
    dp.refresh_from_db()
    assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE, True)


def test_a_version_without_the_split_certifies_both_kinds_of_question_on_one_threshold():
    split = Thresholds(ev=0.9, ev_unboxed_explained=0.8, split=True)
    assert split.for_claim("ev", True) == ("ev_unboxed_explained", 0.8) and split.for_claim("ev", False) == ("ev", 0.9)
    # A version calibrated before the split has one threshold for both kinds of question.
    assert Thresholds(ev=0.9, ev_unboxed_explained=0.8).for_claim("ev", True) == ("ev", 0.9)


@pytest.mark.parametrize("sam3_presence, certified", [(0.05, True), (0.35, False)])
def test_a_version_calibrated_with_sam3s_presence_claims_absence_on_both_witnesses(phase2, sam3_presence,
                                                                                   certified):
    # As versions calibrated before the other claims and witnesses were stacked stored it: absence_with_sam3.
    phase2.active_verifier.manifest = {"target_precision": 0.98, "absence_with_sam3": {
        "p_accept_logit": 1.0, "sam3_presence_logit": -1.0, "bias": 0.0}, "thresholds": {
        "mv": 0.8, "ev": 0.9, "ev_zero": 0.98, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    dp.proposals.update(presence_score=sam3_presence)
    verify(phase2, dp, [0.5], ev_probs(0.8), presence=0.05)  # alone, 0.8 would never pass 0.98
    dp.refresh_from_db()
    if certified:  # P(absent) = sigmoid(logit 0.8 - logit 0.05) = 0.987
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:  # sigmoid(logit 0.8 - logit 0.35) = 0.88
        assert dp.state == DatapointState.MASK_VERIFICATION and "P(absent) 0.88 < 0.98" in dp.reason


@pytest.mark.parametrize("rejected_score, certified", [(0.01, True), (0.8, False)])
def test_after_a_check_sam3s_best_rejected_proposal_weighs_on_whether_the_kept_masks_are_all(phase2, alice,
                                                                                             rejected_score, certified):
    phase2.active_verifier.manifest = {"target_precision": 0.98, "with_sam3": {"ev": {
        "p_accept_logit": 1.0, "sam3_presence_logit": 0.0, "sam3_best_unboxed_logit": -1.0, "bias": 0.0}},
        "thresholds": {"mv": 0.8, "ev": 0.98, "ev_zero": 0.9, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    Mask.objects.filter(datapoint=dp, score__lt=0.85).update(score=rejected_score)
    verify(phase2, dp, [0.5, 0.5], ev_probs(0.6))
    check_masks(phase2, alice, ["accept", "reject"])  # the 0.9 mask is leased first
    verify_exhaustivity(phase2, dp, 0.8)  # alone, 0.8 would never pass 0.98
    dp.refresh_from_db()
    if certified:  # P(exhaustive) = sigmoid(logit 0.8 - logit 0.01) = 0.9975
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE, True)
    else:  # sigmoid(logit 0.8 - logit 0.8) = 0.5: a strong proposal was rejected, an instance may be missing
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION
        assert "P(exhaustive) 0.50 < 0.98" in dp.reason and "best unboxed proposal 0.80" in dp.reason


@pytest.mark.parametrize("n_proposed, certified", [(1, True), (3, False)])
def test_after_a_check_the_number_of_proposals_weighs_on_whether_the_kept_mask_is_all(phase2, alice, n_proposed,
                                                                                     certified):
    phase2.active_verifier.manifest = {"target_precision": 0.98, "with_sam3": {"ev": {
        "p_accept_logit": 1.0, "sam3_proposals_count": -2.0, "bias": 6.0}},
        "thresholds": {"mv": 0.8, "ev": 0.98, "ev_zero": 0.9, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    boxes = [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30), box_mask(0, 30, 15, 45)][:n_proposed]
    dp = proposed(phase2, boxes)
    verify(phase2, dp, [0.5] * n_proposed, ev_probs(0.6))
    check_masks(phase2, alice, ["accept"] + ["reject"] * (n_proposed - 1))
    verify_exhaustivity(phase2, dp, 0.95)  # P(exhaustive) = sigmoid(logit 0.95 - 2n + 6): 0.999, then 0.95
    dp.refresh_from_db()
    if certified:
        assert (dp.state, dp.auto_accepted) == (DatapointState.ACCEPTED, True)
    else:
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and "3 proposed" in dp.reason


@pytest.mark.parametrize("beyond_cap, outcome", [(0.01, "certified"), (0.8, "doubted"), (None, "not recorded")])
def test_after_a_check_an_instance_the_cap_left_out_weighs_on_whether_the_kept_masks_are_all(phase2, alice,
                                                                                             beyond_cap, outcome):
    phase2.active_verifier.manifest = {"target_precision": 0.98, "with_sam3": {"ev": {
        "p_accept_logit": 1.0, "sam3_best_beyond_cap_logit": -1.0, "bias": 0.0}},
        "thresholds": {"mv": 0.8, "ev": 0.98, "ev_zero": 0.9, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    dp.proposals.update(best_beyond_cap=beyond_cap)  # None: stored before proposals recorded it
    verify(phase2, dp, [0.5], ev_probs(0.6))
    check_masks(phase2, alice, ["accept"])
    verify_exhaustivity(phase2, dp, 0.8)  # alone, 0.8 would never pass 0.98
    dp.refresh_from_db()
    if outcome == "certified":  # P(exhaustive) = sigmoid(logit 0.8 - logit 0.01) = 0.9975
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE, True)
    else:  # 0.5: SAM 3 found one more strong instance than the project lets it propose
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and not dp.auto_accepted
        assert ("best beyond the cap 0.80" if outcome == "doubted" else
                "ev weighs SAM 3's sam3_best_beyond_cap: not recorded with this proposal") in dp.reason


@pytest.mark.parametrize("semantic, certified", [("the kept mask", True), ("one more object", False)])
def test_after_a_check_a_region_sam3_calls_the_phrase_outside_the_kept_masks_weighs_on_whether_they_are_all(
        phase2, alice, semantic, certified):
    phase2.active_verifier.manifest = {"target_precision": 0.98, "with_sam3": {"ev": {
        "p_accept_logit": 1.0, "sam3_uncovered_logit": -1.0, "bias": 0.0}},
        "thresholds": {"mv": 0.8, "ev": 0.98, "ev_zero": 0.9, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    kept = box_mask(0, 0, 20, 20)
    dp = proposed(phase2, [kept])
    union = kept if semantic == "the kept mask" else kept | box_mask(30, 10, 50, 30)
    dp.proposals.update(semantic_rle=rle_lib.encode(union))
    verify(phase2, dp, [0.5], ev_probs(0.6))
    check_masks(phase2, alice, ["accept"])
    verify_exhaustivity(phase2, dp, 0.8)  # alone, 0.8 would never pass 0.98
    dp.refresh_from_db()
    if certified:  # nothing uncovered: the witness sits at the floor and P(exhaustive) near 1
        assert (dp.state, dp.auto_accepted) == (DatapointState.ACCEPTED, True)
    else:
        assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and "outside the boxes 13.0%" in dp.reason


@pytest.mark.parametrize("claim", ["ev_zero", "ev_zero_after_check"])
@pytest.mark.parametrize("other_phrase_box, certified", [((0, 0, 20, 20), True), ((30, 10, 50, 30), False)])
def test_a_mask_another_phrase_of_the_image_explains_better_speaks_for_absence(phase2, alice, claim,
                                                                              other_phrase_box, certified):
    """At routing (MV keeps nothing) and after a check (the human rejects the mask), the absence claim weighs how
    much better SAM 3 likes the image's other phrase for the mask."""
    phase2.active_verifier.manifest = {"target_precision": 0.98, "with_sam3": {claim: {
        "p_accept_logit": 1.0, "sam3_competing_margin_value": 10.0, "bias": 0.0}},
        "thresholds": {"mv": 0.8, "ev": 0.98, "ev_zero": 0.9, "ev_zero_after_check": 0.9}}
    phase2.active_verifier.save()
    # A hard negative: SAM 3 found the blue star for "green star" too, and scored it higher for its own phrase.
    found = propose(phase2, image(phase2), {"green star": [box_mask(0, 0, 20, 20)],
                                            "blue star": [box_mask(*other_phrase_box)]})
    dp = found["green star"]
    dp.proposals.update(presence_score=0.2)  # SAM 3 and the verifier agree it is likely absent: no failure sign
    Mask.objects.filter(datapoint=dp).update(score=0.3)
    if claim == "ev_zero":
        verify(phase2, dp, [0.5], ev_probs(0.8), presence=0.2)  # alone, 0.8 would never pass 0.9
    else:
        verify(phase2, dp, [0.5], ev_probs(0.3), presence=0.2)
        check_masks(phase2, alice, ["reject"])
        verify_exhaustivity(phase2, dp, 0.8)
    dp.refresh_from_db()
    if certified:  # margin 0.9 - 0.3: P(absent) = sigmoid(logit 0.8 + 6) = 0.9994
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:  # no other phrase found that object: margin -0.3, P(absent) = sigmoid(logit 0.8 - 3) = 0.17; a human
        # checks the mask (at routing) or looks for the concept (after the check)
        assert dp.state == (DatapointState.MASK_VERIFICATION if claim == "ev_zero" else
                            DatapointState.EXHAUSTIVITY_VERIFICATION) and not dp.auto_accepted
        assert "P(absent) 0.17 < 0.90" in dp.reason and "another phrase's margin -0.30" in dp.reason


@pytest.mark.parametrize("claim, other_phrase_box, explained", [
    ("ev_zero_after_check", (0, 0, 20, 20), True),
    ("ev_zero_after_check", (30, 10, 50, 30), False),  # no other phrase found that object
    ("ev_zero", (0, 0, 20, 20), False),  # before anyone looked it may still be this phrase's instance
])
def test_a_mask_a_human_rejected_and_another_phrase_clearly_prefers_is_explained(phase2, alice, claim,
                                                                                 other_phrase_box, explained):
    """A proposal a human check rejected and SAM 3 scores well below another phrase's proposal on the same object is
    that phrase's instance: the absence claim is judged on the threshold of questions whose unboxed proposals are
    all explained. The claim on the rest has none here, as in the committed verifier: after a check the verifier
    is asked only where the mask is explained."""
    phase2.active_verifier.manifest = {"target_precision": 0.98, "thresholds": {
        "mv": 0.8, "ev": 0.98, "ev_unboxed_explained": 0.98, claim: None, claim + UNBOXED_EXPLAINED: 0.7,
        **{other: 0.99 for other in ("ev_zero", "ev_zero_after_check") if other != claim}}}
    phase2.active_verifier.save()
    found = propose(phase2, image(phase2), {"green star": [box_mask(0, 0, 20, 20)],
                                            "blue star": [box_mask(*other_phrase_box)]})
    dp = found["green star"]
    dp.proposals.update(presence_score=0.2)  # no presence failure sign
    Mask.objects.filter(datapoint=dp).update(score=0.9 - PREFERRED_ELSEWHERE)  # "blue star" scored its star 0.9
    if claim == "ev_zero":
        verify(phase2, dp, [0.5], ev_probs(0.8), presence=0.2)
    else:
        verify(phase2, dp, [0.5], ev_probs(0.3), presence=0.2)
        check_masks(phase2, alice, ["reject"])
        # The verifier is asked again only where the rejected mask is explained.
        assert Job.objects.filter(payload__datapoint=dp.pk, payload__ev_only=True).exists() == explained
        if explained:
            verify_exhaustivity(phase2, dp, 0.8)
    dp.refresh_from_db()
    if explained:
        assert (dp.state, dp.final_label, dp.auto_accepted) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE, True)
    else:  # a mask MV is unsure of, unexplained: no threshold, a human looks
        assert not dp.auto_accepted and "verifier not calibrated for the target precision" in dp.reason


def test_a_claim_calibrated_on_evidence_routing_lacks_is_left_to_humans(phase2, caplog):
    phase2.active_verifier.manifest = {**CALIBRATED, "with_sam3": {"ev_zero": {
        "p_accept_logit": 1.0, "sam3_presence_logit": -1.0, "clip_score_logit": 1.0, "bias": 0.0}}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [], phrase="green star")
    verify(phase2, dp, [], ev_probs(0.999), presence=0.01)  # sure on its own: it must not matter
    dp.refresh_from_db()
    assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and not dp.auto_accepted
    assert "not calibrated for the target precision (not present)" in dp.reason
    assert "unknown witnesses ['clip_score']" in caplog.text


def test_at_routing_a_strong_proposal_mv_did_not_keep_speaks_against_exhaustivity():
    thresholds = Thresholds(0.8, 0.98, 0.9, with_sam3={"ev": {
        "p_accept_logit": 1.0, "sam3_presence_logit": 0.0, "sam3_best_unboxed_logit": -1.0, "bias": 0.0}})
    routes = {score: decide_route(mv={1: mv_probs(0.9), 2: mv_probs(0.3)}, ev=ev_probs(0.8), ev_mask_ids=[1],
                                  sam3_presence=0.9, ai_presence=0.9, mask_areas={1: 400, 2: 400},
                                  mask_scores={1: 0.9, 2: score}, image_area=3072, phrase="red circle",
                                  config=ProjectConfig(), thresholds=thresholds) for score in (0.01, 0.8)}
    assert routes[0.01].auto_accept and routes[0.01].accepted_mask_ids == [1]
    assert not routes[0.8].auto_accept and "P(exhaustive) 0.50 < 0.98" in routes[0.8].reasons[0]


def test_at_routing_an_instance_the_cap_left_out_speaks_against_exhaustivity():
    thresholds = Thresholds(0.8, 0.98, 0.9, with_sam3={"ev": {
        "p_accept_logit": 1.0, "sam3_best_beyond_cap_logit": -1.0, "bias": 0.0}})
    routes = {beyond: decide_route(mv={1: mv_probs(0.9)}, ev=ev_probs(0.8), ev_mask_ids=[1], sam3_presence=0.9,
                                   ai_presence=0.9, mask_areas={1: 400}, mask_scores={1: 0.9}, image_area=3072,
                                   phrase="red circle", config=ProjectConfig(), thresholds=thresholds,
                                   sam3_best_beyond_cap=beyond) for beyond in (0.01, 0.8, None)}
    assert routes[0.01].auto_accept and routes[0.01].accepted_mask_ids == [1]
    assert not routes[0.8].auto_accept and "P(exhaustive) 0.50 < 0.98" in routes[0.8].reasons[0]
    assert not routes[None].auto_accept and "not recorded with this proposal" in routes[None].reasons[0]


def test_at_routing_a_region_sam3_calls_the_phrase_outside_the_boxes_speaks_against_exhaustivity():
    thresholds = Thresholds(0.8, 0.98, 0.9, with_sam3={"ev": {
        "p_accept_logit": 1.0, "sam3_uncovered_logit": -1.0, "bias": 0.0}})
    kept, missed = box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)
    routes = {name: decide_route(mv={1: mv_probs(0.9)}, ev=ev_probs(0.8), ev_mask_ids=[1], sam3_presence=0.9,
                                 ai_presence=0.9, mask_areas={1: 400}, mask_scores={1: 0.9},
                                 mask_rles={1: rle_lib.encode(kept)}, image_area=3072, phrase="red circle",
                                 config=ProjectConfig(), thresholds=thresholds, semantic_rle=semantic)
              for name, semantic in {"covered": rle_lib.encode(kept), "one more": rle_lib.encode(kept | missed),
                                     "unknown": None}.items()}
    assert routes["covered"].auto_accept and routes["covered"].accepted_mask_ids == [1]
    # 400 of 3,072 pixels outside the box: P(exhaustive) = sigmoid(logit 0.8 - logit 0.13) = 0.96 < 0.98.
    assert not routes["one more"].auto_accept and "phrase mask outside the boxes 13.0% of the image" in routes[
        "one more"].reasons[0]
    assert not routes["unknown"].auto_accept and "not recorded with this proposal" in routes["unknown"].reasons[0]


def test_at_routing_proposals_another_phrase_of_the_image_explains_better_speak_for_absence():
    thresholds = Thresholds(0.8, 0.98, 0.9, with_sam3={"ev_zero": {
        "p_accept_logit": 1.0, "sam3_competing_margin_value": 10.0, "bias": 0.0}})
    star = rle_lib.encode(box_mask(0, 0, 20, 20))
    routes = {name: decide_route(mv={1: mv_probs(0.5)}, ev=ev_probs(0.8), ev_mask_ids=[], sam3_presence=0.3,
                                 ai_presence=0.2, mask_areas={1: 400}, mask_scores={1: 0.3}, mask_rles={1: star},
                                 image_area=3072, phrase="green star", config=ProjectConfig(), thresholds=thresholds,
                                 other_phrases=others)
              for name, others in {"explained": [(star, 0.9)], "alone": [], "unknown": None}.items()}
    assert routes["explained"].auto_accept and routes["explained"].accepted_mask_ids == []
    assert not routes["alone"].auto_accept and "another phrase's margin -0.30" in routes["alone"].reasons[0]
    assert not routes["unknown"].auto_accept
    assert "ev_zero weighs SAM 3's sam3_competing_margin: not recorded" in routes["unknown"].reasons[0]


def test_at_routing_the_number_of_proposals_weighs_on_exhaustivity_where_the_calibration_counts_it():
    thresholds = Thresholds(0.8, 0.98, 0.9, with_sam3={"ev": {
        "p_accept_logit": 1.0, "sam3_proposals_count": -2.0, "bias": 6.0}})

    def route(masks: int):
        ids = list(range(1, masks + 1))
        return decide_route(mv={i: mv_probs(0.9 if i == 1 else 0.01) for i in ids}, ev=ev_probs(0.95),
                            ev_mask_ids=[1], sam3_presence=0.9, ai_presence=0.9, mask_areas={i: 400 for i in ids},
                            mask_scores={i: 0.5 for i in ids}, image_area=3072, phrase="red circle",
                            config=ProjectConfig(), thresholds=thresholds)

    alone, among_three = route(1), route(3)  # P(exhaustive) = sigmoid(logit 0.95 - 2n + 6): 0.999, then 0.95
    assert alone.auto_accept and alone.accepted_mask_ids == [1]
    assert not among_three.auto_accept
    assert "P(exhaustive) 0.95 < 0.98" in among_three.reasons[0] and "3 proposed" in among_three.reasons[0]


@pytest.mark.parametrize("presence, config, human_rejects, human_ev", [
    (0.55, {}, False, False),  # SAM 3 unsure of presence: moot once a human accepted a mask
    (0.55, {}, True, True),  # ... but not for a claimed absence
    (0.9, {"low_score_phrases": ["red circle"]}, False, True),  # a failure sign about the masks themselves
])
def test_failure_signs_that_bear_on_the_claim_keep_exhaustivity_with_a_human(phase2, alice, presence, config,
                                                                             human_rejects, human_ev):
    phase2.config = {**phase2.config, **config}
    phase2.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    dp.proposals.update(presence_score=presence)
    verify(phase2, dp, [0.6], ev_probs(0.6), presence=presence)
    check_masks(phase2, alice, ["reject" if human_rejects else "accept"])
    dp.refresh_from_db()
    assert dp.failure_signs
    assert (dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION) is human_ev
    assert Job.objects.filter(payload__datapoint=dp.pk, payload__ev_only=True).exists() is not human_ev
    if human_ev:  # the human EV says why the verifier was not asked
        assert dp.reason.startswith("failure signs after the human check: ")


def test_signs_about_masks_are_taken_again_on_the_masks_the_human_kept(phase2, alice):
    phase2.config = {**phase2.config, "tiny_instance_fraction": 0.01}
    phase2.save()
    dp = proposed(phase2, [box_mask(0, 0, 2, 2), box_mask(30, 10, 50, 30)])
    verify(phase2, dp, [0.6, 0.6], ev_probs(0.6))
    dp.refresh_from_db()
    assert "tiny_instances" in dp.failure_signs
    for _ in range(2):  # the human rejects the fragment and accepts the good mask
        task = services.lease_next_task(phase2, alice, TaskKind.MASK_VERIFICATION)
        decision = "reject" if task.mask.area < 10 else "accept"
        services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision=decision,
                                          seconds=2)
    assert Job.objects.filter(payload__datapoint=dp.pk, payload__ev_only=True).exists(), \
        "the tiny fragment was rejected: no reason left to keep EV from the verifier"


def test_a_verifier_error_on_the_exhaustivity_after_a_check_falls_back_to_a_human_exhaustivity_check(phase2,
                                                                                                       alice):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    verify(phase2, dp, [0.6], ev_probs(0.6))
    check_masks(phase2, alice, ["accept"])
    job = Job.objects.get(payload__datapoint=dp.pk, payload__ev_only=True)
    store_verifier_result(job.pk, {"model_version": "verifier-test", "error": {"kind": "model", "message": "boom"}})
    dp.refresh_from_db()
    assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION and "verifier error" in dp.reason
    assert HumanTask.objects.get(datapoint=dp, kind=TaskKind.EXHAUSTIVITY_VERIFICATION).state == TaskState.QUEUED


def test_what_the_ai_leans_to_reject_goes_to_correction_with_the_reason(phase2):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    verify(phase2, dp, [0.95], ev_probs(0.3))
    dp.refresh_from_db()
    assert dp.state == DatapointState.CORRECTION and "EV not confident" in dp.reason
    task = HumanTask.objects.get(datapoint=dp)
    assert (task.kind, task.state, task.priority) == (TaskKind.CORRECTION, TaskState.QUEUED, 80)


def test_with_every_proposal_a_sure_reject_a_human_looks_for_the_concept_before_any_correction(phase2):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)], phrase="blue star")
    verify(phase2, dp, [0.01, 0.01], ev_probs(0.2))  # EV leans "present", but no proposal is worth a look
    dp.refresh_from_db()
    assert dp.state == DatapointState.EXHAUSTIVITY_VERIFICATION  # 24 s to say "not there", not a 120 s correction
    assert [t.kind for t in HumanTask.objects.filter(datapoint=dp)] == [TaskKind.EXHAUSTIVITY_VERIFICATION]
    assert set(Mask.objects.filter(datapoint=dp).values_list("state", flat=True)) == {"rejected"}


def test_a_project_can_send_every_uncertified_item_to_correction(phase2):
    phase2.config = {**phase2.config, "human_check_min_ev": 1.01}
    phase2.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    verify(phase2, dp, [0.95], ev_probs(0.6))
    dp.refresh_from_db()
    assert dp.state == DatapointState.CORRECTION


def test_a_verifier_calibrated_only_for_absence_settles_negatives_and_sends_masks_to_humans(phase2):
    phase2.active_verifier.manifest = {"target_precision": 0.98, "thresholds": {"mv": None, "ev": None,
                                                                                  "ev_zero": 0.9}}
    phase2.active_verifier.save()
    negative = proposed(phase2, [box_mask(0, 0, 20, 20)], phrase="green star")
    job = Job.objects.get(task_name="verifiers.verify_datapoint.v1", payload__datapoint=negative.pk)
    assert job.payload["mv_accept_threshold"] == 1.0, "no MV threshold: EV is asked about zero boxes"
    negative.proposals.update(presence_score=0.1)
    verify(phase2, negative, [0.1], ev_probs(0.97), presence=0.03)
    negative.refresh_from_db()
    assert (negative.state, negative.final_label) == (DatapointState.ACCEPTED, FinalLabel.NEGATIVE)
    assert list(Mask.objects.filter(datapoint=negative).values_list("state", flat=True)) == ["rejected"]
    positive = proposed(phase2, [box_mask(0, 0, 20, 20)])
    verify(phase2, positive, [0.99], ev_probs(0.97))
    positive.refresh_from_db()
    assert positive.state == DatapointState.MASK_VERIFICATION and \
        "not calibrated for the target precision (masks)" in positive.reason


def test_masks_a_verifier_without_an_mv_threshold_rejected_still_reach_a_human_check(phase2, alice):
    phase2.active_verifier.manifest = {"target_precision": 0.98, "thresholds": {"mv": None, "ev": None,
                                                                                  "ev_zero": 0.9}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30)])
    job = Job.objects.get(task_name="verifiers.verify_datapoint.v1", payload__datapoint=dp.pk)
    result = {"task": job.task_name, "model_version": phase2.active_verifier.name,
              "template_versions": {"mv": "mv.v1", "ev": "ev.v1"}, "presence_score": 0.9, "error": None,
              "mv": [{"mask_id": m["id"], "probabilities": mv_probs(0.3)} for m in job.payload["masks"]],
              "ev": {"mask_ids": [], "probabilities": ev_probs(0.1)}}  # zero boxes: "the concept is present"
    store_verifier_result(job.pk, result)
    dp.refresh_from_db()
    assert dp.state == DatapointState.MASK_VERIFICATION, "not a correction from scratch: the proposals may be right"
    assert sorted(Mask.objects.filter(datapoint=dp).values_list("state", flat=True)) == ["proposed", "proposed"]
    for _ in range(2):
        task = services.lease_next_task(phase2, alice, TaskKind.MASK_VERIFICATION)
        services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, decision="accept",
                                          seconds=2)
    task = services.lease_next_task(phase2, alice, TaskKind.EXHAUSTIVITY_VERIFICATION)
    outcome = services.submit_exhaustivity_verification(task.pk, user=alice, lease_token=task.lease_token,
                                                        decision="accept", seconds=24)
    assert (outcome.datapoint.state, outcome.datapoint.final_label) == (DatapointState.ACCEPTED, FinalLabel.POSITIVE)


def test_a_verifier_without_thresholds_for_the_target_precision_accepts_nothing(phase2):
    phase2.active_verifier.manifest = {"target_precision": 0.9, "thresholds": {"mv": 0.5, "ev": 0.5}}
    phase2.active_verifier.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    verify(phase2, dp, [0.99], ev_probs(0.99))
    dp.refresh_from_db()
    assert not dp.auto_accepted and dp.state == DatapointState.MASK_VERIFICATION and "not calibrated" in dp.reason


@pytest.mark.parametrize("project_drop_precision, skipped", [(0.995, True), (0.999, False)])
def test_masks_at_the_certified_rejection_threshold_are_dropped_unseen(phase2, project_drop_precision, skipped):
    phase2.active_verifier.manifest = {**CALIBRATED, "drop_precision": 0.995,
                                       "thresholds": {**CALIBRATED["thresholds"], "mv_reject": 0.1}}
    phase2.active_verifier.save()
    phase2.config = {**phase2.config, "drop_precision": project_drop_precision}
    phase2.save()
    dp = proposed(phase2, [box_mask(0, 0, 20, 20), box_mask(30, 10, 50, 30), box_mask(0, 30, 10, 40)])
    verify(phase2, dp, [0.5, 0.09, 0.1], ev_probs(0.6))  # P(accept) 0.09 and 0.1: at or below mv_reject
    dp.refresh_from_db()
    shown = HumanTask.objects.filter(datapoint=dp, kind=TaskKind.MASK_VERIFICATION).count()
    states = sorted(Mask.objects.filter(datapoint=dp).values_list("state", flat=True))
    if skipped:
        assert shown == 1 and states == ["proposed", "rejected", "rejected"]
    else:  # a version certified below the project's drop precision: its rejections are not sure enough
        assert shown == 3 and states == ["proposed"] * 3


def test_flag_label_takes_the_phrase_out_of_circulation(phase2):
    dp = proposed(phase2, [], phrase="ugly person")
    verify(phase2, dp, [], ev_probs(0.1, flag_label=0.8))
    dp.refresh_from_db()
    assert (dp.state, dp.final_label) == (DatapointState.REJECTED, FinalLabel.REJECTED)
    assert "flag_label" in dp.reason


@pytest.mark.parametrize("presence, mv_accept, config, reason", [
    (0.55, [0.95], {}, "near the threshold"),
    (0.9, [0.95], {"low_score_phrases": ["red circle"]}, "scores low"),
    (0.9, [0.95] * 3, {"crowded_instances": 3}, "crowded"),
])
def test_failure_prone_items_reach_a_human_even_when_the_verifiers_are_confident(phase2, presence, mv_accept,
                                                                                 config, reason):
    phase2.config = {**phase2.config, **config}
    phase2.save()
    dp = proposed(phase2, [box_mask(10 * i, 0, 10 * i + 8, 8) for i in range(len(mv_accept))])
    dp.proposals.update(presence_score=presence)
    verify(phase2, dp, mv_accept, ev_probs(0.97))
    dp.refresh_from_db()
    assert not dp.auto_accepted and dp.state == DatapointState.MASK_VERIFICATION and reason in dp.reason
    assert HumanTask.objects.filter(datapoint=dp, kind=TaskKind.MASK_VERIFICATION).count() == len(mv_accept)


def test_a_sampled_share_of_auto_accepted_items_goes_to_review_and_measures_precision(phase2, alice):
    phase2.config = {"audit_rate": 1.0}
    phase2.save()
    first = proposed(phase2, [box_mask(0, 0, 20, 20)])
    verify(phase2, first, [0.95], ev_probs(0.97))
    second = proposed(phase2, [], phrase="blue star")
    verify(phase2, second, [], ev_probs(0.99), presence=0.05)
    reviews = HumanTask.objects.filter(kind=TaskKind.REVIEW)
    assert reviews.count() == 2
    task = services.lease_next_task(phase2, alice, TaskKind.REVIEW)
    submit_review(task.pk, user=alice, lease_token=task.lease_token, decision="confirm", seconds=5)
    task = services.lease_next_task(phase2, alice, TaskKind.REVIEW)
    outcome = submit_review(task.pk, user=alice, lease_token=task.lease_token, decision="reject", seconds=7)
    assert outcome.datapoint.state == DatapointState.CORRECTION
    assert HumanTask.objects.get(datapoint=outcome.datapoint, kind=TaskKind.CORRECTION).state == TaskState.QUEUED
    [row] = verifier_precision(phase2)
    assert (row["verifier_version"], row["reviewed"], row["confirmed"], row["precision"]) == ("verifier-test", 2, 1,
                                                                                               0.5)


def test_audit_sampling_is_stable_and_near_the_rate():
    draws = [sampled_for_audit(i, 0.05) for i in range(20_000)]
    assert draws == [sampled_for_audit(i, 0.05) for i in range(20_000)]
    assert 0.04 < sum(draws) / len(draws) < 0.06


def test_a_verifier_error_falls_back_to_a_human_and_a_replay_changes_nothing(phase2):
    dp = proposed(phase2, [box_mask(0, 0, 20, 20)])
    job = Job.objects.get(task_name="verifiers.verify_datapoint.v1")
    failed = store_verifier_result(job.pk, {"model_version": "verifier-test", "error": {
        "kind": "input", "message": "answer 'Z' is not an option"}})
    assert failed.state == JobState.FAILED and "not an option" in failed.error
    dp.refresh_from_db()
    assert dp.state == DatapointState.CORRECTION and "verifier error" in dp.reason
    replay = verify(phase2, dp, [0.99], ev_probs(0.99))
    assert replay.attempts == 2 and HumanTask.objects.filter(datapoint=dp).count() == 1


def test_the_route_is_a_pure_function_of_the_scores():
    config = ProjectConfig()
    route = decide_route(mv={1: mv_probs(0.9), 2: mv_probs(0.2)}, ev=ev_probs(0.95), ev_mask_ids=[1],
                         sam3_presence=0.9, ai_presence=0.9, mask_areas={1: 400, 2: 400}, mask_scores={1: 0.9, 2: 0.3},
                         image_area=3072,
                         phrase="red circle", config=config, thresholds=Thresholds(0.8, 0.9, 0.9))
    assert (route.auto_accept, route.accepted_mask_ids, route.reasons) == (True, [1], [])
    tiny = decide_route(mv={1: mv_probs(0.9)}, ev=ev_probs(0.95), ev_mask_ids=[1], sam3_presence=0.9,
                        ai_presence=0.1, mask_areas={1: 1}, mask_scores={1: 0.9}, image_area=3072, phrase="x",
                        config=config,
                        thresholds=Thresholds(0.8, 0.9, 0.9))
    assert not tiny.auto_accept and any("disagree" in r for r in tiny.reasons) and "tiny instances" in tiny.reasons


@pytest.mark.parametrize("fragment_p_accept, flagged", [(0.05, False), (0.5, True)])
def test_a_tiny_fragment_mv_is_sure_is_wrong_does_not_make_the_item_failure_prone(fragment_p_accept, flagged):
    route = decide_route(mv={1: mv_probs(0.95), 2: mv_probs(fragment_p_accept)}, ev=ev_probs(0.99), ev_mask_ids=[1],
                         sam3_presence=0.9, ai_presence=0.9, mask_areas={1: 400, 2: 1}, mask_scores={1: 0.9, 2: 0.3},
                         image_area=3072, phrase="red circle", config=ProjectConfig(),
                         thresholds=Thresholds(0.8, 0.9, 0.9, mv_reject=0.1))
    assert ("tiny instances" in route.reasons) == flagged and route.auto_accept == (not flagged)


def test_every_mask_the_route_accepts_meets_the_mv_threshold():
    route = decide_route(mv={1: mv_probs(0.95), 2: mv_probs(0.7)}, ev=ev_probs(0.99), ev_mask_ids=[1, 2],
                         sam3_presence=0.9, ai_presence=0.9, mask_areas={1: 400, 2: 400}, mask_scores={1: 0.9, 2: 0.3},
                         image_area=3072,
                         phrase="red circle", config=ProjectConfig(), thresholds=Thresholds(0.8, 0.9, 0.9))
    assert not route.auto_accept and "a mask below the MV threshold 0.80" in route.reasons
