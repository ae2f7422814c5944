"""`python manage.py demo`: the engine end to end on the embedded defaults (see dataengine.engine.demo)."""
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from dataengine.engine import demo


class Command(BaseCommand):
    help = "Run Phase 1 end to end on a synthetic world with SIMULATED annotators, then serve the UI."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=24, help="synthetic scenes to generate")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--error-rate", type=float, default=0.03, help="simulated annotator error rate")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="exit after the summary")

    def handle(self, *args, **opts):
        options = demo.DemoOptions(images=opts["images"], seed=opts["seed"], error_rate=opts["error_rate"],
                                   port=opts["port"])
        started = time.monotonic()
        say = self.stdout.write
        call_command("migrate", interactive=False, verbosity=0)
        users = demo.ensure_users()
        project = demo.fresh_project(users)
        say(f"Project '{project.name}' (id {project.pk}). Accounts (local demo only):")
        for name, (role, password) in demo.DEMO_USERS.items():
            say(f"  {name:<11} {role:<10} password {password}")
        gold = demo.load_world(options)
        report = demo.ingest_folder(project, gold.parent / "images")
        say(f"Synthetic world: {len(report.created)} images ingested from {gold.parent} "
            f"({len(report.failed)} failed, {len(report.duplicates)} duplicates)")
        count = demo.create_world_datapoints(project, gold)
        demo.promote_model_version(project, demo.tiny_model_version())
        project.refresh_from_db()
        say(f"{count} datapoints; SAM 3 ({project.active_model.name}) is proposing masks ...")
        jobs = demo.request_proposals(project)  # embedded default: runs in-process right after commit
        failed = [j for j in jobs if j.__class__.objects.get(pk=j.pk).state == "failed"]
        say(f"{len(jobs)} proposal jobs done ({len(failed)} failed)")
        try:
            server = demo.start_server(options.port)
        except OSError as exc:
            raise CommandError(f"cannot serve on 127.0.0.1:{options.port}: {exc} (use --port)") from exc
        say("SIMULATED annotators are working through the HTTP API (mask verification, exhaustivity, "
            "correction) ...")
        ground_truth, config, stats = demo.run_simulated_annotators(project, users, gold, options)
        say(config.describe())
        say(demo.calibration_summary(stats, ground_truth))
        snapshot = demo.export_snapshot(project, actor=users["lead"])
        demo.print_table(say, "Phase 1 summary (human work by SIMULATED annotators)",
                         demo.summary_rows(project, stats, ground_truth, snapshot, time.monotonic() - started))
        if opts["no_serve"]:
            server.shutdown()
            return
        say(f"\nServing http://127.0.0.1:{options.port}/ (admin at /admin/, API at /api/) — Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.shutdown()
