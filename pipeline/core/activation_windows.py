"""MP102B activation rules (contract 5.1-5.3) as pure functions over plain data.

Every rule is written as "from time X on", so the answer for an alert at time t depends only on which
records exist, never on the order they were read in. That is what makes backlog processing and live
processing agree, and what lets a restarted worker re-decide an alert exactly as before.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.core.bad_input import BadInput
from pipeline.core.event_time import CANCELLATION_FROM_MS, DAY_MS, MINUTE_MS
from pipeline.core.records import FIRMWARE_ACTIVATION_VARIANT, ServiceRequest

# DUIS convention: an 11.3 executing in year 3000 or later cancels a pending future-dated activation.


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    window_ms: int = 30 * MINUTE_MS
    lead_in_ms: int = 0
    max_future_ms: int = 30 * DAY_MS

    @property
    def reach_ms(self) -> int:
        """The longest a request's activation can still be in its window after the request was received."""
        return self.max_future_ms + self.window_ms

    @property
    def input_retention_ms(self) -> int:
        """How long the service-request and outcome topics must keep a record, in whole days, for a rebuild
        to restore every activation whose window is not over (31 days by default)."""
        return -(-self.reach_ms // DAY_MS) * DAY_MS


@dataclass(frozen=True, slots=True)
class RequestVersion:
    """One sighting of an 11.3 request: the DSP may see the same request ID twice (pre-command, signed)."""

    request_id: str
    esme_id: str
    received_at: int
    activation_time: int


@dataclass(frozen=True, slots=True)
class Cancellation:
    esme_id: str
    request_id: str
    received_at: int


@dataclass(frozen=True, slots=True)
class Window:
    start: int
    end: int

    def contains(self, t: int) -> bool:
        return self.start <= t <= self.end


@dataclass(frozen=True, slots=True)
class Activation:
    """An activation that justifies a suppression, with its own window (for the audit record)."""

    version: RequestVersion
    window: Window


def interpret_request(request: ServiceRequest, policy: WindowPolicy) -> RequestVersion | Cancellation | None:
    """What an SR means for suppression: an activation, a cancellation, or nothing (another variant)."""
    if request.service_reference_variant != FIRMWARE_ACTIVATION_VARIANT:
        return None
    r = request.received_at
    x = request.execution_datetime
    if x is not None and x >= CANCELLATION_FROM_MS:
        return Cancellation(request.target_device_id, request.request_id, r)
    if x is not None and x - r > policy.max_future_ms:
        raise BadInput(
            f"execution_datetime is {(x - r) / DAY_MS:.2f} days after received_at, beyond the "
            f"{policy.max_future_ms / DAY_MS:g}-day horizon for future-dated activations "
            "(and before year 3000, so it is not a cancellation)"
        )
    activation_time = r if x is None or x <= r else x
    return RequestVersion(request.request_id, request.target_device_id, r, activation_time)


def window_of(version: RequestVersion, policy: WindowPolicy) -> Window:
    return Window(version.activation_time - policy.lead_in_ms, version.activation_time + policy.window_ms)


def add_version(versions: Sequence[RequestVersion], new: RequestVersion) -> tuple[RequestVersion, ...]:
    """Versions of one request ID in replacement order: by received_at, then by arrival (stable sort)."""
    if new in versions:
        return tuple(versions)
    return tuple(sorted([*versions, new], key=lambda v: v.received_at))


def earliest(current: int | None, new: int) -> int:
    return new if current is None else min(current, new)


def is_current_version(version: RequestVersion, versions: Sequence[RequestVersion], t: int) -> bool:
    """False once a later sighting of the same request ID, received at or before t, replaces it (5.1)."""
    index = versions.index(version)
    return all(later.received_at > t for later in versions[index + 1 :])


def is_cancelled(version: RequestVersion, cancellations: Iterable[int], t: int) -> bool:
    """Rule 5.2: cancelled from c on if received at or before c and not yet started at c."""
    return any(version.received_at <= c <= t and version.activation_time > c for c in cancellations)


def effective_activation(
    version: RequestVersion,
    versions: Sequence[RequestVersion],
    cancellations: Iterable[int],
    withdrawn_at: int | None,
    t: int,
    policy: WindowPolicy,
) -> Activation | None:
    """The activation if it justifies suppressing an alert received at t, else None."""
    if version.received_at > t:
        return None
    window = window_of(version, policy)
    if not window.contains(t):
        return None
    if withdrawn_at is not None and withdrawn_at <= t:
        return None
    if not is_current_version(version, versions, t) or is_cancelled(version, cancellations, t):
        return None
    return Activation(version, window)


def preferred(activations: Iterable[Activation]) -> Activation | None:
    """A deterministic choice among several justifying activations, so re-runs name the same one."""
    return min(
        activations,
        key=lambda a: (a.version.activation_time, a.version.esme_id, a.version.request_id, a.version.received_at),
        default=None,
    )
