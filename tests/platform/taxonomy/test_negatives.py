"""Hard-negative mining on PostgreSQL with a stub SAM 3: candidates from the taxonomy, the adversarial filter,
every decision recorded, kept negatives sent to exhaustivity verification."""
import pytest

from dataengine.annotation.models import HumanTask, Mask, MaskState, TaskKind
from dataengine.concepts.models import Datapoint, DatapointSource, DatapointState, FinalLabel
from dataengine.engine.models import JobState
from dataengine.errors import InvalidInput
from dataengine.taxonomy import services
from dataengine.taxonomy.models import HardNegative
from model import rle as rle_lib
from tests.conftest import token_client
from tests.platform.factories import box_mask, image, propose

pytestmark = [pytest.mark.pg, pytest.mark.django_db]

CAT_BOX = (10, 10, 40, 40)


@pytest.fixture
def verified_cat(project, sample_graph, hash_embedder):
    media = image(project)
    datapoint = propose(project, media, {"house cat": [box_mask(*CAT_BOX)]})["house cat"]
    datapoint.concept.ontology_node = "Q146"
    datapoint.concept.save()
    Mask.objects.filter(datapoint=datapoint).update(state=MaskState.ACCEPTED)
    Datapoint.objects.filter(pk=datapoint.pk).update(state=DatapointState.ACCEPTED, final_label=FinalLabel.POSITIVE)
    return datapoint


def stub_sam3(predictions):
    calls = []

    def propose_masks(image, phrases):
        calls.append(phrases)
        return [{"phrase": p, "instances": [{"rle": rle_lib.encode(box_mask(*b)), "score": 0.8}
                                            for b in predictions.get(p, [])]} for p in phrases]

    propose_masks.calls = calls
    return propose_masks


def test_adversarial_relatives_become_hard_negatives_in_ev(project, verified_cat, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [job] = services.request_hard_negative_mining(project)
    assert len(callbacks) == 1 and job.payload["datapoint"] == verified_cat.pk
    sam3 = stub_sam3({"dog": [(12, 10, 40, 40)], "felis silvestris lybica": [(0, 0, 8, 8)]})
    job = services.mine_hard_negatives(job.pk, propose=sam3)
    assert job.state == JobState.DONE
    decisions = {n.phrase: n for n in HardNegative.objects.all()}
    assert {"dog", "human", "felis silvestris lybica"} <= set(decisions)
    assert "house cat" not in decisions and "mammal" not in decisions and "pet" not in decisions  # the lineage
    dog, human, wildcat = decisions["dog"], decisions["human"], decisions["felis silvestris lybica"]
    assert dog.kept and dog.route == "sibling" and dog.proposal_reason.startswith("sibling: shares the parent")
    assert dog.overlap > 0.9 and dog.decision.startswith("kept: SAM 3 predicts 1 mask(s)")
    assert not human.kept and "predicts nothing" in human.decision
    assert not wildcat.kept and wildcat.route == "uncle" and "do not overlap" in wildcat.decision
    negative = dog.datapoint
    assert negative.source == DatapointSource.HARD_NEGATIVE and negative.media_id == verified_cat.media_id
    assert negative.state == DatapointState.EXHAUSTIVITY_VERIFICATION and negative.concept.ontology_node == "Q144"
    assert HumanTask.objects.filter(datapoint=negative, kind=TaskKind.EXHAUSTIVITY_VERIFICATION).count() == 1
    again = services.mine_hard_negatives(job.pk, propose=sam3)  # a replayed task changes nothing
    assert again.state == JobState.DONE and len(sam3.calls) == 1


def test_mining_needs_an_active_model_and_lists_decisions(project, verified_cat, lead, alice,
                                                          django_capture_on_commit_callbacks):
    project.active_model = None
    project.save()
    with pytest.raises(InvalidInput, match="no active model"):
        services.request_hard_negative_mining(project)
    client = token_client(lead)
    assert client.post(f"/api/projects/{project.pk}/hard-negatives/mine", {}, format="json").status_code == 400
    assert token_client(alice).get(f"/api/projects/{project.pk}/hard-negatives/").status_code == 403
    assert client.get(f"/api/projects/{project.pk}/hard-negatives/?kept=true").json()["results"] == []


@pytest.mark.slow
def test_mining_with_the_real_tiny_sam3_records_a_decision_that_matches_its_overlap(project, verified_cat):
    project.config = {"score_threshold": 0.0, "max_instances": 3}  # the untrained model scores ~0.25
    project.save()
    [job] = services.request_hard_negative_mining(project)
    job = services.mine_hard_negatives(job.pk)  # propose=None: the project's active SAM 3 (tiny preset)
    assert job.state == JobState.DONE, job.error
    decisions = list(HardNegative.objects.filter(positive=verified_cat))
    assert decisions, "the taxonomy proposes candidates for a house cat"
    threshold = float(job.payload["threshold"])
    for negative in decisions:
        adversarial = negative.overlap is not None and negative.overlap >= threshold
        assert adversarial or not negative.kept, negative.decision  # kept ⇒ adversarial (a quota may drop some)
        assert negative.proposal_reason and negative.decision
