"""Phrases the active SAM 3 gets wrong on the gold set become failure-prone in Phase 2 routing."""
import pytest

from dataengine.engine.config import ProjectConfig
from dataengine.engine.exports import import_gold
from dataengine.engine.models import AuditEvent
from dataengine.engine.phrase_scores import phrase_gold_scores, refresh_low_score_phrases
from dataengine.errors import InvalidInput
from model import rle as rle_lib
from tests.conftest import token_client
from tests.platform.factories import HEIGHT, WIDTH, box_mask, image, propose

pytestmark = [pytest.mark.pg, pytest.mark.django_db]

CIRCLE, STAR, DECOY = box_mask(4, 4, 20, 20), box_mask(30, 10, 46, 26), box_mask(40, 30, 60, 46)


def gold_document(pairs: list[tuple[str, str, list]]) -> dict:
    images, annotations = [], []
    for i, (file_name, phrase, masks) in enumerate(pairs, 1):
        images.append({"id": i, "file_name": file_name, "text_input": phrase, "width": WIDTH, "height": HEIGHT})
        annotations += [{"id": 100 * i + j, "image_id": i, "segmentation": rle_lib.encode(m), "iscrowd": 0}
                        for j, m in enumerate(masks)]
    return {"images": images, "annotations": annotations}


@pytest.fixture
def scored(project):
    """Three images; the model finds every red circle, proposes a decoy for the absent blue star everywhere, and
    misses the yellow square (seen on two gold images only)."""
    names = [f"scene{i}.png" for i in range(3)]
    for seed, name in enumerate(names):
        propose(project, image(project, name, seed=seed),
                {"red circle": [CIRCLE], "blue star": [DECOY], **({"yellow square": []} if seed < 2 else {})})
    import_gold(project, gold_document([(n, "red circle", [CIRCLE]) for n in names]
                                       + [(n, "blue star", []) for n in names]
                                       + [(n, "yellow square", [STAR]) for n in names[:2]]))
    return project


def test_each_phrase_is_scored_as_the_evaluator_counts_its_pairs(scored):
    scores = phrase_gold_scores(scored, scored.active_model)
    assert scores["red circle"] == {"pairs": 3, "tp": 3, "fp": 0, "fn": 0, "f1": 1.0}
    assert scores["blue star"] == {"pairs": 3, "tp": 0, "fp": 3, "fn": 0, "f1": 0.0}
    assert scores["yellow square"] == {"pairs": 2, "tp": 0, "fp": 0, "fn": 2, "f1": 0.0}


def test_low_scoring_phrases_with_enough_gold_pairs_become_failure_prone(scored, lead):
    report = refresh_low_score_phrases(scored, actor=lead)
    assert report["low_score_phrases"] == ["blue star"]  # the yellow square has 2 gold pairs, fewer than 3
    assert report["model_version"] == scored.active_model.name and report["gold_pairs_answered"] == 8
    scored.refresh_from_db()
    assert ProjectConfig.of(scored).low_score_phrases == ("blue star",)
    assert AuditEvent.objects.filter(action="project.low_score_phrases", project=scored).exists()
    assert refresh_low_score_phrases(scored, min_pairs=2)["low_score_phrases"] == ["blue star", "yellow square"]


def test_leads_refresh_them_over_http_and_bad_requests_change_nothing(scored, lead, alice):
    url = f"/api/projects/{scored.pk}/gold/low-score-phrases"
    response = token_client(lead).post(url, {"max_f1": 0.5}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["low_score_phrases"] == ["blue star"]
    assert token_client(alice).post(url, {}, format="json").status_code == 403
    scored.config = {}
    scored.save()
    for body in ({"max_f1": 2}, {"min_pairs": 0}, {"max_f1": "high"}):
        assert token_client(lead).post(url, body, format="json").status_code == 400
    scored.refresh_from_db()
    assert scored.config == {}


def test_scoring_needs_a_gold_set_and_an_active_model(project):
    propose(project, image(project), {"red circle": [CIRCLE]})
    with pytest.raises(InvalidInput, match="no gold set"):
        refresh_low_score_phrases(project)
    project.active_model = None
    project.save()
    with pytest.raises(InvalidInput, match="no active SAM 3"):
        refresh_low_score_phrases(project)
