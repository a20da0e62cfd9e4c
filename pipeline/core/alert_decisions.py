"""What happens to an alert, and why: the vocabulary shared by the state, the worker and the metrics."""

from dataclasses import dataclass
from enum import StrEnum

from pipeline.core.activation_windows import Activation


class ForwardReason(StrEnum):
    NOT_AD1 = "not_ad1"
    NO_ESME_ON_HAN = "no_esme_on_han"
    NO_TRACKED_ESME = "no_tracked_esme"
    NO_ACTIVATION_WINDOW = "no_activation_window"
    HOLD_EXPIRED = "hold_expired"
    OUTAGE_EVIDENCE = "outage_evidence"  # rule 9: in a window, but with evidence of a genuine outage


@dataclass(frozen=True, slots=True)
class Forward:
    reason: ForwardReason


@dataclass(frozen=True, slots=True)
class Suppress:
    activation: Activation

    @property
    def reason(self) -> str:
        v = self.activation.version
        return (
            f"AD1 received within the firmware activation window of tracked ESME {v.esme_id} "
            f"on the same HAN (SR 11.3 request {v.request_id}, activation at {v.activation_time} ms)"
        )


Decision = Forward | Suppress
