"""`manage.py ingest_ontology wordnet [--folder DIR]` or `manage.py ingest_ontology wikidata DUMP [--skip-malformed]`
(`--resume RUN_ID` continues a failed run from its last committed offset). Runs in the foreground with a
progress bar; the API's POST /api/ontology/ingests/ does the same on the cpu queue."""
from django.core.management.base import BaseCommand, CommandError

from dataengine.errors import DomainError
from dataengine.taxonomy import services
from dataengine.taxonomy.models import IngestRun, IngestState, OntologySource


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("source", choices=OntologySource.values)
        parser.add_argument("path", nargs="?", help="the Wikidata dump (.json, .json.gz, .json.bz2)")
        parser.add_argument("--folder", help="the WordNet dict folder (default: where the install script put it)")
        parser.add_argument("--skip-malformed", action="store_true")
        parser.add_argument("--resume", type=int, help="an IngestRun id to continue")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, **options):
        try:
            if options["source"] == OntologySource.WORDNET:
                run = services.ingest_wordnet(options["folder"])
            else:
                if options["resume"]:
                    run = IngestRun.objects.filter(pk=options["resume"]).first()
                    if run is None:
                        raise CommandError(f"no ingest run {options['resume']}")
                elif options["path"]:
                    services.check_dump_path(options["path"])
                    run = IngestRun.objects.create(source=OntologySource.WIKIDATA, path=options["path"],
                                                   skip_malformed=options["skip_malformed"])
                else:
                    raise CommandError("give the dump's path (or --resume RUN_ID)")
                run = services.run_dump_ingest(run.pk, batch_size=options["batch_size"], progress=True)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if run.state != IngestState.DONE:
            raise CommandError(f"ingest run {run.pk} failed at offset {run.offset} ({run.entities} entities kept): "
                               f"{run.error}; fix the dump or pass --skip-malformed, then --resume {run.pk}")
        self.stdout.write(f"ingest run {run.pk}: {run.entities} entities ({run.rate:,.0f}/s)"
                          + (f"; truncated: {run.report['truncated']}" if run.report.get("truncated") else ""))
