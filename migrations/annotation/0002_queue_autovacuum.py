"""Leased rows stay in the queue-head partial index until VACUUM; vacuum the queue table early (PostgreSQL)."""
from django.db import migrations


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE annotation_humantask SET (autovacuum_vacuum_scale_factor = 0, "
                              "autovacuum_vacuum_threshold = 5000, autovacuum_analyze_scale_factor = 0.02)")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE annotation_humantask RESET (autovacuum_vacuum_scale_factor, "
                              "autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor)")


class Migration(migrations.Migration):
    dependencies = [("annotation", "0001_initial")]
    operations = [migrations.RunPython(tune, untune)]
