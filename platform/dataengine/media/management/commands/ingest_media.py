"""`python manage.py ingest_media PROJECT_ID (--folder DIR | --s3 s3://bucket/prefix)`: bulk ingest for data leads."""
import json

from django.core.management.base import BaseCommand, CommandError

from dataengine.accounts.models import Project
from dataengine.errors import DomainError
from dataengine.media.services import ingest_folder, ingest_s3_prefix
from dataengine.media.storage import s3_client


class Command(BaseCommand):
    help = "Ingest every file of a local folder or an S3 prefix into a project (duplicates and corrupt files reported)."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int)
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--folder")
        source.add_argument("--s3", help="s3://bucket/prefix on the configured S3 endpoint")

    def handle(self, *args, project, folder, s3, **opts):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"project {project} does not exist")
        try:
            if folder:
                report = ingest_folder(target, folder)
            else:
                if not s3.startswith("s3://") or "/" not in s3[5:]:
                    raise CommandError("--s3 must look like s3://bucket/prefix")
                bucket, prefix = s3[5:].split("/", 1)
                report = ingest_s3_prefix(target, bucket=bucket, prefix=prefix, client=s3_client())
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps({k: len(v) for k, v in report.as_dict().items()}))
