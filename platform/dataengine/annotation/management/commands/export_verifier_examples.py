"""`python manage.py export_verifier_examples PROJECT_ID OUT_DIR`: a project's human MV/EV decisions (and what
corrections imply) as verifier training examples, for `python -m verifiers.train --examples OUT_DIR/examples.jsonl
--images OUT_DIR/images` (see dataengine.annotation.verifier_examples)."""
import json

from django.core.management.base import BaseCommand, CommandError

from dataengine.accounts.models import Project
from dataengine.annotation.verifier_examples import write_verifier_examples


class Command(BaseCommand):
    help = "Export a project's human verdicts as verifier training examples (JSONL + images)."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="project id")
        parser.add_argument("out", help="folder to write examples.jsonl and images/ into")

    def handle(self, *args, **opts):
        project = Project.objects.filter(pk=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {opts['project']}")
        summary = write_verifier_examples(project, opts["out"])
        if not summary["examples"]:
            raise CommandError(f"project {project.pk} has no human verdicts to export yet")
        self.stdout.write(json.dumps(summary, indent=2))
