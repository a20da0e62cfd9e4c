"""`make bench`: throughput, latency, load and recovery figures of poa-filter on a real Kafka broker (issue 3)."""
