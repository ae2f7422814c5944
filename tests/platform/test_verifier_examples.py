"""A project's human decisions become verifier training examples, adjudicated by its gold set where it has one."""
import json

import pytest
from django.core.management import CommandError, call_command

from dataengine.annotation import services
from dataengine.annotation.models import Mask, Proposal, TaskKind, Verdict, VerdictKind
from dataengine.annotation.verifier_examples import gold_ev, gold_mv, verifier_examples, write_verifier_examples
from dataengine.engine.exports import import_gold
from model import rle as rle_lib
from tests.platform.factories import HEIGHT, WIDTH, box_mask, image, propose

pytestmark = [pytest.mark.pg, pytest.mark.django_db]

CIRCLE, OTHER_CIRCLE, WRONG = box_mask(0, 0, 20, 20), box_mask(40, 20, 60, 40), box_mask(30, 0, 38, 8)


def gold_document(media) -> dict:
    """The project's frozen gold set for the image: two red circles, no blue star."""
    return {"images": [{"id": 1, "file_name": media.name, "text_input": "red circle", "width": WIDTH, "height": HEIGHT},
                       {"id": 2, "file_name": media.name, "text_input": "blue star", "width": WIDTH, "height": HEIGHT}],
            "annotations": [{"id": i, "image_id": 1, "segmentation": rle_lib.encode(m), "iscrowd": 0}
                            for i, m in enumerate((CIRCLE, OTHER_CIRCLE), 1)]}


def work(project, user, kind, **answer):
    task = services.lease_next_task(project, user, kind)
    submit = {TaskKind.MASK_VERIFICATION: services.submit_mask_verification,
              TaskKind.EXHAUSTIVITY_VERIFICATION: services.submit_exhaustivity_verification,
              TaskKind.CORRECTION: services.submit_correction}[kind]
    if kind == TaskKind.CORRECTION:
        answer["datapoint_revision"] = task.datapoint.revision
    return submit(task.pk, user=user, lease_token=task.lease_token, seconds=5, **answer)


@pytest.fixture
def annotated(project, alice):
    """Phase 1 on one image: a positive with a right and a wrong proposal (MV, EV rejects, a correction adds the
    missed circle) and a negative with no proposal (EV accepts)."""
    media = image(project, "scene.png")
    import_gold(project, gold_document(media))
    dps = propose(project, media, {"red circle": [CIRCLE, WRONG], "blue star": []})
    right, wrong = Mask.objects.filter(datapoint=dps["red circle"]).order_by("id")
    decisions = {right.pk: "accept", wrong.pk: "accept"}  # the wrong one too: a human mistake
    for _ in range(2):
        task = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
        services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token,
                                          decision=decisions[task.mask_id], seconds=2)
    work(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION, decision="accept")  # blue star: queued first
    work(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION, decision="reject")  # red circle: one is missing
    work(project, alice, TaskKind.CORRECTION, outcome="complete", masks=[
        services.MaskInput(mask_id=right.pk), services.MaskInput(rle=rle_lib.encode(OTHER_CIRCLE))])
    return project, media


def test_every_human_decision_becomes_an_example_with_the_gold_sets_verdict(annotated):
    project, media = annotated
    rows = verifier_examples(project)
    summary = [(r["task"], r["kind"], r["phrase"], len(r["rles"]), r["label"], r.get("gold")) for r in rows]
    assert sorted(summary) == sorted([
        ("mv", "human_mv", "red circle", 1, "accept", "accept"),
        ("mv", "human_mv", "red circle", 1, "accept", "reject"),  # the gold set overrules the mistake
        ("ev", "human_ev", "blue star", 0, "accept", "accept"),  # zero boxes: not present
        ("ev", "human_ev", "red circle", 2, "reject", "reject"),  # both MV-accepted masks were boxed
        ("mv", "correction_added", "red circle", 1, "accept", "accept"),
        ("ev", "correction_final", "red circle", 2, "accept", "accept"),
        # Routing's question before anyone looked, answered by how each datapoint ended.
        ("ev", "outcome_before_check", "blue star", 0, "accept", "accept"),
        ("ev", "outcome_before_check", "red circle", 0, "reject", "reject"),
    ])
    assert {r["image"] for r in rows} == {f"{media.sha256}.png"}
    assert all("sam3_presence" not in r for r in rows if r["task"] == "mv")
    presence = {p.datapoint.concept.phrase: p.presence_score for p in Proposal.objects.filter(datapoint__project=project)}
    # SAM 3's witnesses on each EV question: its presence, and its best proposal the question leaves unboxed (the
    # right circle scored 0.9, the wrong mask 0.8; the correction's final set boxes the right and a drawn one).
    witnesses = sorted((r["kind"], r["phrase"], r["sam3_presence"], r["sam3_best_unboxed"]) for r in rows
                       if r["task"] == "ev")
    proposed = {p.datapoint.concept.phrase: len(p.instances) for p in Proposal.objects.filter(datapoint__project=project)}
    assert all(r["sam3_proposals"] == proposed[r["phrase"]] for r in rows if r["task"] == "ev")
    assert all(r["sam3_best_beyond_cap"] == 0.05 for r in rows if r["task"] == "ev")  # as the proposals recorded it
    assert witnesses == sorted([
        ("human_ev", "blue star", presence["blue star"], 0.0),
        ("human_ev", "red circle", presence["red circle"], 0.0),
        ("correction_final", "red circle", presence["red circle"], pytest.approx(0.8)),
        ("outcome_before_check", "blue star", presence["blue star"], 0.0),
        ("outcome_before_check", "red circle", presence["red circle"], pytest.approx(0.9)),
    ])
    # And the proposals themselves it leaves unboxed: the correction's final set leaves the wrong mask out.
    unboxed = {(r["kind"], r["phrase"]): r["unboxed_rles"] for r in rows if r["task"] == "ev"}
    assert unboxed[("correction_final", "red circle")] == [rle_lib.encode(WRONG)]
    assert unboxed[("outcome_before_check", "red circle")] == [rle_lib.encode(m) for m in (CIRCLE, WRONG)]
    assert unboxed[("human_ev", "red circle")] == [] and unboxed[("human_ev", "blue star")] == []
    # How much better another phrase of the image explains them: "blue star" proposed nothing, so minus their own
    # best score (0 where nothing is unboxed).
    margins = {(r["kind"], r["phrase"]): r["sam3_competing_margin"] for r in rows if r["task"] == "ev"}
    assert margins == {("correction_final", "red circle"): pytest.approx(-0.8),
                       ("outcome_before_check", "red circle"): pytest.approx(-0.9),
                       ("human_ev", "red circle"): 0.0, ("human_ev", "blue star"): 0.0,
                       ("outcome_before_check", "blue star"): 0.0}
    # Where SAM 3's phrase mask (here both proposals: 464 pixels) lies outside the boxed masks: all of it before
    # anyone looked, the wrong mask's 64 pixels beside the corrected set, nothing beside the checked one.
    uncovered = {(r["kind"], r["phrase"]): r["sam3_uncovered"] for r in rows if r["task"] == "ev"}
    assert uncovered == {("outcome_before_check", "red circle"): pytest.approx(464 / (HEIGHT * WIDTH)),
                         ("correction_final", "red circle"): pytest.approx(64 / (HEIGHT * WIDTH)),
                         ("human_ev", "red circle"): 0.0, ("human_ev", "blue star"): 0.0,
                         ("outcome_before_check", "blue star"): 0.0}
    # ... each unboxed proposal's own margin, of which the witness is the least.
    each = {(r["kind"], r["phrase"]): r["unboxed_margins"] for r in rows if r["task"] == "ev"}
    assert each[("outcome_before_check", "red circle")] == pytest.approx([-0.9, -0.8])
    assert each[("correction_final", "red circle")] == pytest.approx([-0.8]) and each[("human_ev", "blue star")] == []


def test_a_datapoint_corrected_twice_gives_its_final_set_once(annotated, alice):
    project, _ = annotated
    before = verifier_examples(project)
    positive = Verdict.objects.get(kind=VerdictKind.CORRECTION).datapoint
    # As after an audit sent the accepted datapoint back and a second correction confirmed it.
    Verdict.objects.create(kind=VerdictKind.CORRECTION, datapoint=positive, decision="complete", user=alice, seconds=9)
    assert verifier_examples(project) == before


def test_the_export_is_what_the_verifier_trainer_reads(annotated, tmp_path):
    from verifiers.training import load_examples

    project, media = annotated
    summary = write_verifier_examples(project, tmp_path)
    assert (summary["examples"], summary["with_gold"], summary["images"]) == (8, 8, 1)
    assert summary["by_kind"] == {"human_mv": 2, "human_ev": 2, "correction_added": 1, "correction_final": 1,
                                  "outcome_before_check": 2}
    examples = load_examples(tmp_path / "examples.jsonl", tmp_path / "images")
    assert [e.gold for e in examples] == [json.loads(line)["gold"] for line in
                                          (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert examples[0].image.size == (WIDTH, HEIGHT)


def test_the_command_names_a_missing_project_or_one_without_verdicts(project, tmp_path, capsys):
    with pytest.raises(CommandError, match="no project with id 999"):
        call_command("export_verifier_examples", "999", str(tmp_path))
    with pytest.raises(CommandError, match="no human verdicts"):
        call_command("export_verifier_examples", str(project.pk), str(tmp_path))


def test_gold_verdicts_follow_the_iou_rules():
    gold = [rle_lib.encode(CIRCLE), rle_lib.encode(OTHER_CIRCLE)]
    nearly = rle_lib.encode(box_mask(0, 0, 20, 18))  # IoU 0.9
    half = rle_lib.encode(box_mask(0, 0, 20, 10))  # IoU 0.5: covers, but is not a good mask
    assert (gold_mv(nearly, gold), gold_mv(half, gold), gold_mv(nearly, [])) == ("accept", "reject", "reject")
    assert gold_ev([nearly, half], gold) == "reject"  # the second circle is not covered
    assert gold_ev([half, rle_lib.encode(OTHER_CIRCLE)], gold) == "accept"
    assert (gold_ev([], []), gold_ev([nearly], []), gold_ev([], gold)) == ("accept", "accept", "reject")


def test_a_mask_a_correction_restored_becomes_a_good_mask_example(project, alice):
    dp = propose(project, image(project, "scene.png"), {"red circle": [CIRCLE, OTHER_CIRCLE]})["red circle"]
    circle, other = Mask.objects.filter(datapoint=dp).order_by("id")
    for _ in range(2):  # a human MV rejects the right circle by mistake
        task = services.lease_next_task(project, alice, TaskKind.MASK_VERIFICATION)
        services.submit_mask_verification(task.pk, user=alice, lease_token=task.lease_token, seconds=2,
                                          decision="reject" if task.mask_id == circle.pk else "accept")
    work(project, alice, TaskKind.EXHAUSTIVITY_VERIFICATION, decision="reject")
    work(project, alice, TaskKind.CORRECTION, outcome="complete", masks=[
        services.MaskInput(mask_id=other.pk), services.MaskInput(mask_id=circle.pk)])
    mv_rows = [(r["kind"], r["label"], r["rles"][0]) for r in verifier_examples(project) if r["task"] == "mv"]
    assert sorted(mv_rows, key=str) == sorted([
        ("human_mv", "reject", circle.rle), ("human_mv", "accept", other.rle),
        ("correction_kept", "accept", circle.rle),  # the human's second look, not the first, is the label here
    ], key=str)
