"""Domain expansion plans end to end on PostgreSQL: plan → datapoints → stop rules → coverage; bad plans refused."""
import pytest

from dataengine.concepts.models import Datapoint, DatapointSource, DatapointState, FinalLabel
from dataengine.engine.models import JobState
from dataengine.errors import InvalidInput, NotFound
from dataengine.taxonomy import services
from dataengine.taxonomy.models import ExpansionPlan, PhraseState, PlanPhrase
from tests.conftest import token_client
from tests.platform.factories import image

pytestmark = [pytest.mark.pg, pytest.mark.django_db]

ANIMALS = {"name": "animals", "roots": ["Q729"], "images_per_phrase": 2, "datapoints_per_phrase": 3}


@pytest.fixture
def images(project):
    return [image(project, f"scene{i}.png", seed=i) for i in range(5)]


def plan_for(project, lead, **domain):
    return services.create_plan(project, name="Grow into animals", domains=[{**ANIMALS, **domain}], actor=lead,
                                model_good_min_samples=2)


def phrases_of(project):
    rows = Datapoint.objects.filter(project=project).values_list("concept__phrase", "media_id")
    out = {}
    for phrase, media in rows:
        out.setdefault(phrase, set()).add(media)
    return out


def test_a_plan_becomes_datapoints_round_by_round_until_each_phrase_has_enough(project, lead, images, sample_graph):
    plan = plan_for(project, lead)
    first = services.apply_plan(plan)
    phrases = phrases_of(project)
    assert set(phrases) == {"animal", "mammal", "pet", "house cat", "dog", "human", "felis silvestris lybica"}
    assert all(len(media) == 2 for media in phrases.values()) and first.created == 14
    datapoint = Datapoint.objects.filter(concept__phrase="house cat").first()
    assert datapoint.source == DatapointSource.ONTOLOGY and datapoint.concept.ontology_node == "Q146"
    # "dog" has enough accepted data; "house cat" needed no human edit twice: the model is good at it.
    Datapoint.objects.filter(concept__phrase="dog").update(state=DatapointState.ACCEPTED, final_label=FinalLabel.NEGATIVE)
    Datapoint.objects.create(project=project, media=images[4], concept=Datapoint.objects.filter(
        concept__phrase="dog").first().concept, state=DatapointState.ACCEPTED, final_label=FinalLabel.POSITIVE)
    Datapoint.objects.filter(concept__phrase="house cat").update(state=DatapointState.ACCEPTED,
                                                                 final_label=FinalLabel.POSITIVE)
    second = services.apply_plan(plan)
    assert second.domains["animals"]["stopped"] == {PhraseState.ENOUGH_DATA: 1, PhraseState.MODEL_GOOD: 1}
    phrases = phrases_of(project)
    assert len(phrases["dog"]) == 3 and len(phrases["house cat"]) == 2
    assert len(phrases["mammal"]) == 4  # two more images, never the same pair twice
    third = services.apply_plan(plan)  # five images: one left for each open phrase, then none
    assert len(phrases_of(project)["mammal"]) == 5 and third.created == 5
    services.apply_plan(plan)
    assert PlanPhrase.objects.get(node_id="Q7377").state == PhraseState.NO_MEDIA

    coverage = services.plan_coverage(plan)
    [domain] = coverage["domains"]
    assert (domain["phrases"], domain["phrases_covered"], domain["phrases_done"]) == (7, 2, 2)
    cat = next(n for n in domain["nodes"] if n["node"] == "Q146")
    assert (cat["state"], cat["positive"], cat["target"], cat["progress"]) == ("model_good", 2, 3, 2 / 3)


def test_per_node_quotas_override_the_domain(project, lead, images, sample_graph):
    plan = plan_for(project, lead, node_quotas={"Q144": {"images_per_phrase": 4}})
    services.apply_plan(plan)
    assert len(phrases_of(project)["dog"]) == 4 and len(phrases_of(project)["pet"]) == 2


@pytest.mark.parametrize("roots, error, message", [
    ([], InvalidInput, "root set is empty"),
    (["Q2001", "Q2002"], InvalidInput, "cyclic root set"),
    (["Q729", "Q146"], InvalidInput, "root Q146 lies under root Q729"),
    (["Q729", "Q404"], NotFound, "Q404"),
])
def test_bad_root_sets_are_refused_and_nothing_is_written(project, lead, sample_graph, roots, error, message):
    with pytest.raises(error, match=message):
        plan_for(project, lead, roots=roots)
    assert not ExpansionPlan.objects.exists()


def test_quotas_beyond_the_media_are_refused_before_anything_is_written(project, lead, images, sample_graph):
    plan = plan_for(project, lead, images_per_phrase=6)
    with pytest.raises(InvalidInput, match="asks for 6 images per phrase but its media sources hold 5"):
        services.apply_plan(plan)
    assert not Datapoint.objects.exists() and not PlanPhrase.objects.exists()


def test_media_from_a_folder_source_are_ingested_first(project, lead, sample_graph, tmp_path):
    from tests.conftest import png_bytes

    folder = tmp_path / "new-domain"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.png").write_bytes(png_bytes(seed=10 + i))
    (folder / "broken.png").write_bytes(b"not an image")
    plan = plan_for(project, lead, roots=["Q7377"], media_sources=[{"kind": "folder", "path": str(folder)}])
    services.apply_plan(plan)
    assert {len(m) for m in phrases_of(project).values()} == {2}
    assert project.media.count() == 4  # the broken file is kept as a failed item, never used


def test_the_plan_api(project, lead, alice, images, sample_graph, django_capture_on_commit_callbacks):
    client = token_client(lead)
    body = {"name": "animals", "domains": [{**ANIMALS, "media_sources": [{"kind": "dataset"}]}]}
    assert token_client(alice).post(f"/api/projects/{project.pk}/plans/", body, format="json").status_code == 403
    bad = client.post(f"/api/projects/{project.pk}/plans/", {"name": "x", "domains": [{**ANIMALS, "roots": []}]},
                      format="json")
    assert bad.status_code == 400 and "root set is empty" in bad.json()["message"]
    created = client.post(f"/api/projects/{project.pk}/plans/", body, format="json")
    assert created.status_code == 201, created.content
    plan_id = created.json()["id"]
    assert client.post(f"/api/projects/{project.pk}/plans/", body, format="json").status_code == 409
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/api/plans/{plan_id}/apply")
    assert response.status_code == 202 and len(callbacks) == 1
    job = services.run_plan_job(response.json()["id"])
    assert job.state == JobState.DONE and job.summary["created"] == 14
    coverage = client.get(f"/api/plans/{plan_id}/coverage").json()
    assert coverage["domains"][0]["datapoints"] == 14
    assert client.get(f"/api/plans/{plan_id}/").json()["state"] == "active"
    assert token_client(alice).get(f"/api/plans/{plan_id}/coverage").status_code == 403
