"""A SIMULATED human annotator: a client of the platform's public HTTP API that answers from ground truth.

It is a test instrument (docs/simulated-annotator.md): everything it prints or returns says "simulated".
It never waits for the simulated seconds; it reports them with each submission (the ``seconds`` field) and
in its own log.

API used (exactly what a browser uses; ``Authorization: Token <key>``):

* ``POST /api/projects/{pid}/tasks/next`` ``{"kind"}`` -> 200 task JSON, or 204 when that queue is empty.
  Task: ``{id, kind, lease_token, datapoint: {id, phrase, revision, media: {sha256, name, width, height}},
  mask: {id, rle, ...} | null, masks: [accepted masks], candidates: [rejected masks, correction tasks only]}``.
* ``POST /api/tasks/{id}/mask-verification`` ``{lease_token, decision, seconds}``
* ``POST /api/tasks/{id}/exhaustivity-verification`` ``{lease_token, decision, seconds}``
* ``POST /api/tasks/{id}/correction`` ``{lease_token, datapoint_revision, outcome, masks, reason, seconds}``
* ``POST /api/tasks/{id}/review`` ``{lease_token, decision, seconds}`` (Phase 2+ audits; only when ``review`` is
  among the kinds it polls, e.g. ``ALL_TASK_KINDS``)

A 409 (lease lost, stale token or revision, task already done) or 403 (someone else's task) on a submission
is logged and counted as a conflict; any other error status raises ApiError.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import requests

from simulated_annotator import decisions
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth

log = logging.getLogger("simulated_annotator")

MASK_VERIFICATION = "mask_verification"
EXHAUSTIVITY_VERIFICATION = "exhaustivity_verification"
CORRECTION = "correction"
REVIEW = "review"
TASK_KINDS = (MASK_VERIFICATION, EXHAUSTIVITY_VERIFICATION, CORRECTION)
ALL_TASK_KINDS = TASK_KINDS + (REVIEW,)  # with Phase 2+ reviews of AI-accepted datapoints
SIMULATED_LABEL = "SIMULATED annotator (test instrument; not human data)"

_SUBMIT_PATH = {MASK_VERIFICATION: "mask-verification", EXHAUSTIVITY_VERIFICATION: "exhaustivity-verification",
                CORRECTION: "correction", REVIEW: "review"}
_TOLERATED = (403, 409)
# A task that conflicts this often in a row is a bug in the platform or here, not a race.
_MAX_CONFLICTS_PER_TASK = 3


class ApiError(RuntimeError):
    """The platform answered with an error status the simulated annotator does not expect."""

    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} -> {status}: {body[:500]}")
        self.status = status


@dataclass(frozen=True)
class TaskRecord:
    """One submitted task in the simulated annotator's log."""

    annotator: str
    task_id: int | None
    datapoint_id: int
    kind: str
    seconds: float
    sha256: str
    phrase: str
    decision: str
    mistake: bool


@dataclass
class SessionStats:
    """What one simulated annotator (or a team, once combined) did. Always labelled simulated."""

    annotator: str
    tasks: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)
    mistakes: Counter = field(default_factory=Counter)
    conflicts: int = 0
    unknown_pairs: int = 0
    log: list[TaskRecord] = field(default_factory=list)
    simulated: bool = True

    @property
    def total_tasks(self) -> int:
        return sum(self.tasks.values())

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    def record(self, entry: TaskRecord, *, unknown_pair: bool = False) -> None:
        self.tasks[entry.kind] += 1
        self.seconds[entry.kind] += entry.seconds
        self.mistakes[entry.kind] += int(entry.mistake)
        self.unknown_pairs += int(unknown_pair)
        self.log.append(entry)

    @classmethod
    def combine(cls, parts: Sequence["SessionStats"], name: str | None = None) -> "SessionStats":
        """Sum several annotators' stats (their logs concatenated)."""
        total = cls(annotator=name or f"team of {len(parts)}")
        for part in parts:
            total.tasks.update(part.tasks)
            total.seconds.update(part.seconds)
            total.mistakes.update(part.mistakes)
            total.conflicts += part.conflicts
            total.unknown_pairs += part.unknown_pairs
            total.log.extend(part.log)
        return total

    def as_dict(self) -> dict:
        return {"label": SIMULATED_LABEL, "simulated": True, "annotator": self.annotator,
                "tasks": dict(self.tasks), "simulated_seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "mistakes": dict(self.mistakes), "conflicts": self.conflicts, "unknown_pairs": self.unknown_pairs}

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {self.tasks[k]} ({self.seconds[k]:,.0f} s, {self.mistakes[k]} mistakes)"
                          for k in ALL_TASK_KINDS if self.tasks[k])
        return (f"{SIMULATED_LABEL} '{self.annotator}': {self.total_tasks} tasks [{kinds or 'none'}], "
                f"{self.total_seconds:,.0f} simulated seconds, {self.conflicts} conflicts, "
                f"{self.unknown_pairs} pairs not in the ground truth")


class SimulatedAnnotator:
    """One simulated annotator logged in with ``token``, working on project ``project_id``.

    ``decide_*`` are pure (no HTTP); ``run`` leases and submits tasks through the API. One instance per
    thread (its requests.Session is not shared).
    """

    def __init__(self, base_url: str, token: str, project_id: int, ground_truth: GroundTruth,
                 config: AnnotatorConfig | None = None, name: str = "sim-annotator", *,
                 timeout: tuple[float, float] = (5.0, 60.0)):
        self.base_url = base_url.rstrip("/")
        self.project_id = project_id
        self.ground_truth = ground_truth
        self.config = config or AnnotatorConfig()
        self.name = name
        self.timeout = timeout
        self.stats = SessionStats(annotator=name)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json",
                                     "User-Agent": "simulated-annotator/1 (SIMULATED test instrument)"})
        self._conflicts_by_task: Counter = Counter()

    # ------------------------------------------------------------ decisions (pure)

    def decide_mask_verification(self, task: dict) -> tuple[str, float]:
        """(decision, simulated seconds) for a mask_verification task."""
        answer = decisions.answer_mask_verification(task, self.ground_truth, self.config)
        return answer.decision, answer.seconds

    def decide_exhaustivity(self, task: dict) -> tuple[str, float]:
        """(decision, simulated seconds) for an exhaustivity_verification task."""
        answer = decisions.answer_exhaustivity(task, self.ground_truth, self.config)
        return answer.decision, answer.seconds

    def decide_correction(self, task: dict) -> dict:
        """The request body for a correction task (final mask set, outcome, seconds, lease token)."""
        return decisions.answer_correction(task, self.ground_truth, self.config).payload(task)

    # ------------------------------------------------------------ HTTP

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def next_task(self, kind: str) -> dict | None:
        """Lease the next task of ``kind``; None when that queue is empty."""
        url = self._url(f"/api/projects/{self.project_id}/tasks/next")
        response = self.session.post(url, json={"kind": kind}, timeout=self.timeout)
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise ApiError("POST", url, response.status_code, response.text)
        return response.json()

    def _submit(self, task: dict, body: dict) -> bool:
        """POST a decision; False (logged, counted) on a tolerated conflict."""
        url = self._url(f"/api/tasks/{task['id']}/{_SUBMIT_PATH[task['kind']]}")
        response = self.session.post(url, json=body, timeout=self.timeout)
        if response.status_code == 200:
            return True
        if response.status_code in _TOLERATED:
            self.stats.conflicts += 1
            self._conflicts_by_task[task["id"]] += 1
            log.warning("[SIMULATED] %s: task %s %s -> %s, moving on: %s", self.name, task["id"], task["kind"],
                        response.status_code, response.text[:300])
            if self._conflicts_by_task[task["id"]] >= _MAX_CONFLICTS_PER_TASK:
                raise ApiError("POST", url, response.status_code,
                               f"task conflicted {_MAX_CONFLICTS_PER_TASK} times in a row: {response.text}")
            return False
        raise ApiError("POST", url, response.status_code, response.text)

    def work(self, task: dict) -> TaskRecord | None:
        """Answer one leased task and submit it; the log entry, or None after a conflict."""
        kind = task["kind"]
        if kind == MASK_VERIFICATION:
            answer = decisions.answer_mask_verification(task, self.ground_truth, self.config)
            body = {"lease_token": task["lease_token"], "decision": answer.decision, "seconds": answer.seconds}
            decision = answer.decision
        elif kind == EXHAUSTIVITY_VERIFICATION:
            answer = decisions.answer_exhaustivity(task, self.ground_truth, self.config)
            body = {"lease_token": task["lease_token"], "decision": answer.decision, "seconds": answer.seconds}
            decision = answer.decision
        elif kind == CORRECTION:
            answer = decisions.answer_correction(task, self.ground_truth, self.config)
            body = answer.payload(task)
            decision = answer.outcome
        elif kind == REVIEW:
            answer = decisions.answer_review(task, self.ground_truth, self.config)
            body = {"lease_token": task["lease_token"], "decision": answer.decision, "seconds": answer.seconds}
            decision = answer.decision
        else:
            raise ValueError(f"the simulated annotator does not do {kind!r} tasks")
        if not self._submit(task, body):
            return None
        datapoint = task["datapoint"]
        entry = TaskRecord(self.name, task["id"], datapoint["id"], kind, answer.seconds,
                           datapoint["media"].get("sha256", ""), datapoint["phrase"], decision, answer.mistake)
        self.stats.record(entry, unknown_pair=answer.unknown_pair)
        return entry

    def run(self, kinds: Sequence[str] = TASK_KINDS, *, max_tasks: int | None = None, idle_rounds: int = 5,
            idle_sleep: float = 1.0, stop: threading.Event | None = None) -> SessionStats:
        """Poll every kind in ``kinds`` (one task each per round) until ``idle_rounds`` rounds in a row find
        all queues empty (sleeping ``idle_sleep`` s between them), ``max_tasks`` tasks were leased, or
        ``stop`` is set. New tasks appear as earlier ones finish, hence polling all kinds together."""
        leased, idle = 0, 0
        while stop is None or not stop.is_set():
            worked = False
            for kind in kinds:
                if max_tasks is not None and leased >= max_tasks:
                    return self.stats
                task = self.next_task(kind)
                if task is None:
                    continue
                leased += 1
                worked = True
                self.work(task)
            if worked:
                idle = 0
                continue
            idle += 1
            if idle >= idle_rounds:
                break
            time.sleep(idle_sleep)
        return self.stats


def run_team(annotators: Sequence[SimulatedAnnotator], *,
             kinds: Sequence[str] | Mapping[str, Sequence[str]] = TASK_KINDS, max_tasks: int | None = None,
             idle_rounds: int = 5, idle_sleep: float = 1.0) -> SessionStats:
    """Run several simulated annotators in threads until a whole pass finds no work; stats combined.

    ``kinds`` is one list for everyone or a mapping from annotator name to its kinds (Phase 1: each
    annotator does one task type). An annotator stops after ``idle_rounds`` empty rounds, but the team runs
    passes until every annotator was idle in the same pass, because one kind's tasks appear only as another
    kind's finish. ``max_tasks`` is per annotator. The first exception is re-raised after the others stop.
    """
    stop = threading.Event()

    def work(annotator: SimulatedAnnotator) -> SessionStats:
        own = kinds.get(annotator.name, TASK_KINDS) if isinstance(kinds, Mapping) else kinds
        left = None if max_tasks is None else max_tasks - annotator.stats.total_tasks - annotator.stats.conflicts
        try:
            return annotator.run(own, max_tasks=left, idle_rounds=idle_rounds, idle_sleep=idle_sleep, stop=stop)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, len(annotators)), thread_name_prefix="sim-annotator") as pool:
        while True:
            before = sum(a.stats.total_tasks + a.stats.conflicts for a in annotators)
            for future in [pool.submit(work, a) for a in annotators]:
                future.result()
            after = sum(a.stats.total_tasks + a.stats.conflicts for a in annotators)
            capped = max_tasks is not None and all(
                a.stats.total_tasks + a.stats.conflicts >= max_tasks for a in annotators)
            if after == before or capped:
                break
    return SessionStats.combine([a.stats for a in annotators])
