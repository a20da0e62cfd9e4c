"""Explanations asked over HTTP, answered by the worker loop (contract 7, "Explanations").

The filter state is written by the worker's loop thread alone and is not safe to read from another thread.
So the HTTP thread does not read it: it queues the question and waits, a bounded time, for the loop thread
to answer it between two steps (`serve`), from the same state, staged changes included, that the loop
decides alerts with. A question the loop does not reach in time is answered "worker busy". Each step
answers one question at most, and one costs a bounded scan (`explanation.MAX_STORM_SCAN_HANS`), so
questions never hold decisions up for long, however many are asked.

Its answer agrees with what the worker will do. The triage takes storm evidence for an AD1 at t as final
once evidence is complete (every AD1 up to t + A read, by some batch) and the activation inputs are read
past t + A or to end offsets looked up after that batch (`AlertTriage._with_evidence`). So a question is
first noted with the batch number then and whether evidence was complete, an end-offset look-up after it
is asked for (`InputsSeen`), and the question is answered once the look-up is in, the decision being
final when both held; at most DEFER_S later it is answered anyway (pending, if not final by then).
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.core.explanation import EvidenceStatus, Json, explain
from pipeline.core.filter_state import FilterState
from pipeline.core.operating_mode import Mode, ModeSchedule
from pipeline.core.outage_evidence import EvidencePolicy

log = logging.getLogger(__name__)

WAIT_S = 5.0  # how long an HTTP request waits for the loop thread
MAX_WAITING = 16  # questions waiting at once; more are refused at once rather than tie up HTTP threads
DEFER_S = 1.0  # how long a question waits at most for end offsets looked up after it was noted


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
    batch: int = 0  # the batch number when the loop noted it
    complete: bool = True  # whether its evidence was complete then
    noted_at: float = 0.0  # monotonic


@dataclass(frozen=True)
class InputsSeen:
    """What the loop's read frontier says of the activation inputs: the batch number now (`batch`), a request
    for end offsets looked up after a batch (`request`), whether the end offsets known were (`covered`), and
    whether the inputs allow a decision at t for an AD1 of a batch (`read_past(t, batch)`)."""

    batch: Callable[[], int]
    request: Callable[[int], None]
    covered: Callable[[int], bool]
    read_past: Callable[[int, int], bool]


@dataclass
class _Final:
    """Rule 9's evidence for one question: final or not, as the triage would judge it."""

    policy: EvidencePolicy
    final: bool

    def complete(self, t: int) -> bool:
        return self.final


class ExplainRequests:
    """The bridge: `ask` from HTTP threads, `serve` once per step from the worker loop thread."""

    def __init__(self, wait_s: float = WAIT_S, max_waiting: int = MAX_WAITING) -> None:
        self._questions: queue.Queue[_Question] = queue.Queue(max_waiting)
        self._wait_s = wait_s
        self._noted: list[_Question] = []  # taken from the queue, waiting for end offsets looked up after them

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
        self,
        state: FilterState,
        schedule: ModeSchedule | None = None,
        evidence: EvidenceStatus | None = None,
        inputs: InputsSeen | None = None,
    ) -> int:
        """Answer the next question that can be from `state`, in the operator mode `schedule` has in force at
        the time asked about, with what `evidence` (the evidence reader) and `inputs` say of rule 9's evidence
        (module docstring; without `inputs`, `evidence` alone) (loop thread only); how many were answered
        (one at most: the others wait for the next steps). Never raises: a failing explanation is logged and
        answered as failed, and the worker goes on."""
        now = time.monotonic()
        self._noted = [q for q in self._noted if not q.abandoned]
        if inputs is not None and evidence is not None:
            while len(self._noted) < MAX_WAITING:  # note the new questions, with the batch number now
                question = self._next_question()
                if question is None:
                    break
                question.batch, question.noted_at = inputs.batch(), now
                question.complete = evidence.complete(question.at_ms)
                self._noted.append(question)
            ready = [q for q in self._noted if inputs.covered(q.batch) or now - q.noted_at >= DEFER_S]
            if not ready:
                if self._noted:
                    inputs.request(min(q.batch for q in self._noted))
                return 0
            question = ready[0]
            self._noted.remove(question)
            after = evidence.policy.complete_after(question.at_ms)
            final = question.complete and inputs.read_past(after, question.batch)
            self._answer(state, schedule, question, _Final(evidence.policy, final))
            return 1
        question = self._next_question()
        if question is None:
            return 0
        self._answer(state, schedule, question, evidence)
        return 1

    def _next_question(self) -> _Question | None:
        while True:
            try:
                question = self._questions.get_nowait()
            except queue.Empty:
                return None
            if not question.abandoned:
                return question

    def _answer(
        self, state: FilterState, schedule: ModeSchedule | None, question: _Question, evidence: EvidenceStatus | None
    ) -> None:
        try:
            mode = Mode.FILTER if schedule is None else schedule.mode_at(question.at_ms)
            question.answer = explain(state, question.device_id, question.at_ms, mode, evidence)
        except Exception:  # the worker must not stop for an explanation
            log.exception("an explanation failed")
            question.failed = True
        question.answered.set()
