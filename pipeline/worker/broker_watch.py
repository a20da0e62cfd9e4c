"""What the worker's Kafka clients report about the cluster, through librdkafka's error callback.

Two reports change what the loop does: a fatal client error (the alert consumer is then replaced), and
no broker answering at all (the hold clock stops: forwarding held AD1s because of an outage would make
decisions depend on its length). Everything else is logged.
"""

import logging

from confluent_kafka import KafkaError

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.worker.metrics import Readiness

log = logging.getLogger(__name__)


class BrokerWatch:
    def __init__(self, readiness: Readiness, clock: Clock = SYSTEM_CLOCK) -> None:
        self._readiness = readiness
        self._clock = clock
        self.fatal_error = False  # a client failed for good: the alert consumer is to be replaced
        self.down_since: float | None = None  # monotonic time since when no broker answered

    def on_client_error(self, err: KafkaError) -> None:
        """The `error_cb` of the worker's consumers."""
        if err.fatal():
            log.error("fatal Kafka client error: %s", err)
            self.fatal_error = True
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self.down_since is None:
                log.warning("no broker reachable; holding alerts until it is back: %s", err)
                self.down_since = self._clock.monotonic()
                self._readiness.set("no Kafka broker reachable")
        elif err.code() != KafkaError._TRANSPORT:  # librdkafka logs each refused connection itself
            log.warning("Kafka client: %s", err)

    def answered(self, now: float) -> float:
        """A broker answered again at `now`: how long none had (the outage is over)."""
        assert self.down_since is not None
        outage, self.down_since = now - self.down_since, None
        return outage
