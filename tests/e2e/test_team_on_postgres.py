"""Twenty SIMULATED annotators on PostgreSQL through a real HTTP server: every task served once, all work done."""
from collections import Counter

import pytest

from dataengine.accounts.models import Role
from dataengine.accounts.services import add_member
from dataengine.annotation.models import HumanTask, TaskState
from dataengine.annotation.proposing import request_proposals
from dataengine.concepts.models import Datapoint, DatapointState
from dataengine.engine.demo import DEMO_PROJECT_CONFIG, create_world_datapoints
from dataengine.engine.services import promote_model_version, register_model_version
from dataengine.media.services import ingest_folder

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_twenty_annotators_finish_phase_one_without_serving_a_task_twice(live_server, project, make_user, tmp_path):
    from rest_framework.authtoken.models import Token

    from model.synthetic import generate_world
    from simulated_annotator.annotator import SimulatedAnnotator, run_team
    from simulated_annotator.config import AnnotatorConfig
    from simulated_annotator.ground_truth import GroundTruth

    generate_world(tmp_path, seed=7, n_images=6)
    project.config = DEMO_PROJECT_CONFIG
    project.save()
    ingest_folder(project, tmp_path / "images")
    create_world_datapoints(project, tmp_path / "gold.json")
    promote_model_version(project, register_model_version(name="sam3-tiny-e2e", uri="preset:tiny?seed=0"))
    project.refresh_from_db()
    request_proposals(project)  # no broker configured in tests: the chain runs in-process after commit
    assert not Datapoint.objects.filter(state=DatapointState.PROPOSING).exists()

    ground_truth = GroundTruth.from_gold(tmp_path / "gold.json")
    team = []
    for i in range(20):
        user = make_user(f"sim{i}")
        add_member(project, user, Role.ANNOTATOR)
        team.append(SimulatedAnnotator(live_server.url, Token.objects.create(user=user).key, project.pk,
                                       ground_truth, AnnotatorConfig(seed=i), name=f"sim{i}"))
    stats = run_team(team, idle_rounds=2, idle_sleep=0.1)

    served = Counter(record.task_id for record in stats.log)
    assert served and max(served.values()) == 1, "a task was completed twice"
    assert stats.conflicts == 0
    assert len({record.annotator for record in stats.log}) >= 10, "work should spread over the team"
    assert not HumanTask.objects.exclude(state__in=[TaskState.DONE, TaskState.CANCELLED]).exists()
    assert set(Datapoint.objects.values_list("state", flat=True)) <= {DatapointState.ACCEPTED, DatapointState.REJECTED}
    assert HumanTask.objects.filter(state=TaskState.DONE).count() == len(stats.log)
