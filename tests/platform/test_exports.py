"""SA-Co snapshots out, gold files in, predictions as COCO results."""
import json

import pytest
from django.core.files.storage import default_storage

from dataengine.annotation import services
from dataengine.annotation.models import TaskKind
from dataengine.concepts.models import Datapoint
from dataengine.engine.exports import coco_results, export_snapshot, import_gold, sa_co_document
from dataengine.errors import InvalidInput
from model import rle as rle_lib
from tests.conftest import token_client
from tests.platform.factories import box_mask, image, propose

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def accept_everything(project, user):
    for kind in (TaskKind.MASK_VERIFICATION, TaskKind.EXHAUSTIVITY_VERIFICATION):
        while task := services.lease_next_task(project, user, kind):
            submit = (services.submit_mask_verification if kind == TaskKind.MASK_VERIFICATION
                      else services.submit_exhaustivity_verification)
            submit(task.pk, user=user, lease_token=task.lease_token, decision="accept", seconds=1)


def test_a_snapshot_is_sa_co_json_in_storage_with_positives_and_negatives(project, alice, lead):
    media = image(project, "scene.png")
    circle = box_mask(8, 4, 24, 20)
    propose(project, media, {"red circle": [circle], "green star": []})
    accept_everything(project, alice)
    response = token_client(lead).post(f"/api/projects/{project.pk}/snapshots/")
    assert response.status_code == 201
    snapshot = response.json()
    assert snapshot["counts"] == {"datapoints": 2, "positives": 1, "negatives": 1, "masks": 1}
    with default_storage.open(snapshot["storage_name"]) as handle:
        document = json.load(handle)
    by_phrase = {entry["text_input"]: entry for entry in document["images"]}
    assert set(by_phrase) == {"red circle", "green star"}
    positive = by_phrase["red circle"]
    assert (positive["file_name"], positive["width"], positive["height"]) == ("scene.png", 64, 48)
    assert (positive["is_instance_exhaustive"], positive["is_pixel_exhaustive"]) == (1, 1)
    [annotation] = document["annotations"]
    assert annotation["image_id"] == positive["id"]
    assert annotation["bbox"] == pytest.approx([8 / 64, 4 / 48, 16 / 64, 16 / 48])
    assert annotation["area"] == pytest.approx(16 * 16 / (64 * 48))
    assert (rle_lib.decode(annotation["segmentation"]) == circle).all()
    assert (annotation["iscrowd"], annotation["source"]) == (0, "created by SAM3")
    assert document["info"]["code_version"]
    assert token_client(lead).get(f"/api/snapshots/{snapshot['id']}/download").json() == document


def test_gold_import_round_trips_a_snapshot_and_refuses_malformed_files(project, alice):
    media = image(project, "scene.png")
    propose(project, media, {"red circle": [box_mask(8, 4, 24, 20)], "green star": []})
    accept_everything(project, alice)
    document = sa_co_document(project)
    assert import_gold(project, document) == {"gold_datapoints": 2}
    gold = sa_co_document(project, gold=True)
    assert [(i["text_input"], i["label"]) for i in gold["images"]] == [("red circle", "positive"),
                                                                       ("green star", "negative")]
    assert [a["segmentation"] for a in gold["annotations"]] == [a["segmentation"] for a in document["annotations"]]
    assert Datapoint.objects.filter(is_gold=True, source="gold").count() == 2
    broken = {**document, "annotations": [{**document["annotations"][0], "segmentation": {"size": [1, 1],
                                                                                          "counts": "x"}}]}
    with pytest.raises(InvalidInput):
        import_gold(project, {**broken, "images": [{**document["images"][0], "text_input": "blue circle"}]})
    assert not Datapoint.objects.filter(concept__phrase="blue circle").exists()  # nothing half-written
    with pytest.raises(InvalidInput, match="no media item"):
        import_gold(project, {"images": [{"id": 1, "file_name": "missing.png", "text_input": "x"}]})


def test_predictions_are_coco_results_keyed_by_datapoint(project, lead):
    media = image(project)
    dps = propose(project, media, {"red circle": [box_mask(8, 4, 24, 20)]})
    results = coco_results(project, project.active_model)
    assert len(results) == 1
    assert results[0]["image_id"] == dps["red circle"].pk
    assert results[0]["bbox"] == [8.0, 4.0, 16.0, 16.0]
    response = token_client(lead).get(f"/api/projects/{project.pk}/predictions",
                                      {"model_version": project.active_model.name})
    assert response.json() == results


def test_snapshot_export_is_recorded_in_the_audit_log(project, lead):
    from dataengine.engine.models import AuditEvent

    snapshot = export_snapshot(project, actor=lead)
    event = AuditEvent.objects.get(action="snapshot.export")
    assert (event.actor, event.target_id) == (lead, str(snapshot.pk))
