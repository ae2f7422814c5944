"""The hot path: leasing the next task and reading its API representation in ONE PostgreSQL statement.

``POST /api/projects/{id}/tasks/next`` is the most frequent call an annotator makes. On PostgreSQL this module
does the held-lease check, the ``FOR UPDATE SKIP LOCKED`` lease and the joins the response needs (datapoint,
phrase, media, the mask to verify, the accepted masks and, for a correction, the rejected ones) in one
autocommitted statement, and builds the JSON by hand: the same shape as annotation.api.serializers.TaskSerializer
(a test compares them). The lease's commit
does not wait for the WAL flush: a lease lost in a crash only sends the task back to the queue, and the
annotator's submission is then refused with 409. Submissions keep synchronous commits.
SQLite (the embedded default) uses services.lease_next_task and the serializer.
"""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from dataengine.annotation.models import TaskKind
from dataengine.errors import InvalidInput

_LEASE_WITH_DETAIL = """
WITH fast_commit AS (
    SELECT set_config('synchronous_commit', 'off', true)
), held AS (
    SELECT id FROM annotation_humantask
     WHERE holder_id = %(user)s AND project_id = %(project)s AND kind = %(kind)s AND state = 'leased'
       AND lease_expires_at > %(now)s
     ORDER BY id LIMIT 1
), leased AS (
    UPDATE annotation_humantask
       SET state = 'leased', holder_id = %(user)s, lease_expires_at = %(expires)s,
           lease_token = lease_token + 1, attempts = attempts + 1
     WHERE NOT EXISTS (SELECT 1 FROM held)
       AND id = (SELECT id FROM annotation_humantask
                  WHERE project_id = %(project)s AND kind = %(kind)s AND state = 'queued'
                  ORDER BY priority DESC, id
                  LIMIT 1
                  FOR UPDATE SKIP LOCKED)
    RETURNING id, kind, project_id, state, priority, lease_token, lease_expires_at, attempts, datapoint_id, mask_id
), task AS (
    SELECT * FROM leased
    UNION ALL
    SELECT t.id, t.kind, t.project_id, t.state, t.priority, t.lease_token, t.lease_expires_at, t.attempts,
           t.datapoint_id, t.mask_id
      FROM annotation_humantask t JOIN held ON held.id = t.id
)
SELECT task.id, task.kind, task.project_id, task.state, task.priority, task.lease_token, task.lease_expires_at,
       task.attempts, d.id, c.phrase, d.revision, d.state, m.id, m.name, m.sha256, m.width, m.height,
       k.id, k.rle::json, k.bbox::json, k.area, k.iscrowd, k.score, k.source, k.state,
       listed.accepted, listed.candidates
  FROM task
  JOIN concepts_datapoint d ON d.id = task.datapoint_id
  JOIN concepts_concept c ON c.id = d.concept_id
  JOIN media_mediaitem m ON m.id = d.media_id
  LEFT JOIN annotation_mask k ON k.id = task.mask_id
 CROSS JOIN LATERAL (
    SELECT coalesce(json_agg(a.doc ORDER BY a.id) FILTER (WHERE a.state = 'accepted'), '[]'::json) AS accepted,
           coalesce(json_agg(a.doc ORDER BY a.id) FILTER (WHERE a.state = 'rejected' AND task.kind = 'correction'),
                    '[]'::json) AS candidates
      FROM (SELECT id, state, json_build_object('id', id, 'rle', rle, 'bbox', bbox, 'area', area, 'iscrowd', iscrowd,
                                                'score', score, 'source', source, 'state', state) AS doc
              FROM annotation_mask WHERE datapoint_id = task.datapoint_id AND state IN ('accepted', 'rejected')) a
 ) listed
 CROSS JOIN fast_commit
"""


def _iso(value: dt.datetime | None) -> str | None:
    """The timestamp as DRF renders it (UTC, 'Z')."""
    if value is None:
        return None
    text = value.astimezone(dt.timezone.utc).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _task_json(row) -> dict:
    (task_id, kind, project_id, state, priority, lease_token, lease_expires_at, attempts, dp_id, phrase, revision,
     dp_state, media_id, media_name, sha256, width, height, mask_id, rle, bbox, area, iscrowd, score, source,
     mask_state, masks, candidates) = row
    mask = None if mask_id is None else {"id": mask_id, "rle": rle, "bbox": bbox, "area": area, "iscrowd": iscrowd,
                                         "score": score, "source": source, "state": mask_state}
    return {
        "id": task_id, "kind": kind, "project": project_id, "state": state, "priority": priority,
        "lease_token": lease_token, "lease_expires_at": _iso(lease_expires_at), "attempts": attempts,
        "datapoint": {"id": dp_id, "phrase": phrase, "revision": revision, "state": dp_state,
                      "media": {"id": media_id, "name": media_name, "sha256": sha256, "width": width,
                                "height": height, "file_url": reverse("media-file", args=[media_id])}},
        "mask": mask,
        "masks": masks,
        "candidates": candidates,
    }


def lease_next_task_json(project_id: int, user_id: int, kind: str, *, lease_seconds: int | None = None) -> dict | None:
    """services.lease_next_task and the task's JSON in one statement (PostgreSQL only); None when none is queued."""
    from dataengine.annotation.services import requeue_expired_leases

    if kind not in TaskKind.values:
        raise InvalidInput(f"unknown task kind {kind!r}; one of {TaskKind.values}")
    now = timezone.now()
    params = {"user": user_id, "project": project_id, "kind": kind, "now": now,
              "expires": now + dt.timedelta(seconds=lease_seconds or settings.TASK_LEASE_SECONDS)}

    def run():
        with connection.cursor() as cursor:
            cursor.execute(_LEASE_WITH_DETAIL, params)
            return cursor.fetchone()

    row = run()
    if row is None and requeue_expired_leases(project=project_id, kind=kind, now=now):
        row = run()
    return _task_json(row) if row is not None else None
