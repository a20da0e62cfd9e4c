"""Explanations asked over HTTP, answered by the worker loop (contract 7, "Explanations").

The filter state is written by the worker's loop thread alone and is not safe to read from another thread.
So the HTTP thread does not read it: it queues the question and waits, a bounded time, for the loop thread
to answer it between two steps (`serve`), from the same state, staged changes included, that the loop
decides alerts with. A question the loop does not reach in time is answered "worker busy". Each step
answers one question at most, and one costs a bounded scan (`explanation.MAX_STORM_SCAN_HANS`), so
questions never hold decisions up for long, however many are asked.
"""

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.core.explanation import EvidenceStatus, Json, explain
from pipeline.core.filter_state import FilterState
from pipeline.core.operating_mode import Mode, ModeSchedule
from pipeline.core.outage_evidence import EvidencePolicy

log = logging.getLogger(__name__)

WAIT_S = 5.0  # how long an HTTP request waits for the loop thread
MAX_WAITING = 16  # questions waiting at once; more are refused at once rather than tie up HTTP threads


class WorkerBusy(Exception):
    """The loop thread did not answer in time, or too many questions are already waiting."""


class ExplainFailed(Exception):
    """The explanation raised; the loop logged it and carried on deciding alerts."""


@dataclass
class _Question:
    device_id: str
    at_ms: int
    answered: threading.Event = field(default_factory=threading.Event)
    answer: Json | None = None
    failed: bool = False
    abandoned: bool = False


@dataclass
class TriageEvidence:
    """Rule 9's evidence as the triage judges it final (`AlertTriage._with_evidence`): complete (the evidence
    reader), and the activation inputs read past t + A, so that an explanation never shows forwarded on storm
    evidence an AD1 the worker will suppress. `inputs_read_past(t)`: the read frontier allows a decision at t
    for what has been read so far."""

    policy: EvidencePolicy
    evidence: EvidenceStatus
    inputs_read_past: Callable[[int], bool]

    def complete(self, t: int) -> bool:
        return self.evidence.complete(t) and self.inputs_read_past(self.policy.complete_after(t))


class ExplainRequests:
    """The bridge: `ask` from HTTP threads, `serve` once per step from the worker loop thread."""

    def __init__(self, wait_s: float = WAIT_S, max_waiting: int = MAX_WAITING) -> None:
        self._questions: queue.Queue[_Question] = queue.Queue(max_waiting)
        self._wait_s = wait_s

    def ask(self, device_id: str, at_ms: int) -> Json:
        """The explanation of a valid device ID at an event time, from the loop thread; WorkerBusy if it does not
        answer within the wait, ExplainFailed if explaining raised."""
        question = _Question(device_id, at_ms)
        try:
            self._questions.put_nowait(question)
        except queue.Full:
            raise WorkerBusy(f"{self._questions.maxsize} explanations are already waiting for the worker") from None
        if not question.answered.wait(self._wait_s):
            question.abandoned = True
            raise WorkerBusy(f"the worker did not answer within {self._wait_s:g} s")
        if question.failed or question.answer is None:
            raise ExplainFailed("the explanation failed; see the worker's log")
        return question.answer

    def waiting(self) -> int:
        """How many questions wait (roughly: another thread may be adding one)."""
        return self._questions.qsize()

    def serve(
        self, state: FilterState, schedule: ModeSchedule | None = None, evidence: EvidenceStatus | None = None
    ) -> int:
        """Answer the next waiting question from `state`, in the operator mode `schedule` has in force at the time
        asked about, with what `evidence` (`TriageEvidence`) says of rule 9's evidence (loop thread only); how
        many were answered (one at most: the others wait for the next steps). Never raises: a failing
        explanation is logged and answered as failed, and the worker goes on."""
        served = 0
        while not served:
            try:
                question = self._questions.get_nowait()
            except queue.Empty:
                return served
            if question.abandoned:
                continue
            try:
                mode = Mode.FILTER if schedule is None else schedule.mode_at(question.at_ms)
                question.answer = explain(state, question.device_id, question.at_ms, mode, evidence)
            except Exception:  # the worker must not stop for an explanation
                log.exception("an explanation failed")
                question.failed = True
            question.answered.set()
            served += 1
        return served
