# poa-filter: `make demo` runs the filter on a local broker, `make test` runs the whole suite.
# Everything it needs is installed by these targets: a virtualenv (.venv), the Python packages,
# and the Apache Kafka jars (fetched by Maven into .kafka/).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA := bash deploy/kafka/kafka.sh
PYTEST_ARGS ?=

.PHONY: help venv kafka-up kafka-down kafka-secure-up kafka-secure-down kafka-cluster-up kafka-cluster-down demo test unit-test lint bench bench-gb clean prometheus dashboard

help:
	@echo "make demo        run the filter on a local Kafka with a simulated firmware campaign"
	@echo "make test        the whole test suite against a local Kafka (what CI runs)"
	@echo "make bench       throughput/latency benchmark on a local Kafka"
	@echo "make bench-gb    Great Britain's estate on one worker: load, first ready, restart (SCALE=0.01 for a fraction)"
	@echo "make kafka-up    start the local single-node Kafka (KRaft) on 127.0.0.1:9092"
	@echo "make kafka-down  stop it"
	@echo "make kafka-secure-up / kafka-secure-down    a secured broker: SASL_SSL (SCRAM) and mutual TLS, ACLs"
	@echo "make kafka-cluster-up / kafka-cluster-down  a three-broker KRaft cluster (replication 3)"
	@echo "make lint        ruff and mypy"
	@echo "make prometheus  fetch Prometheus and promtool (Debian package, unpacked under .tools/)"
	@echo "make dashboard   regenerate the Grafana dashboard JSON (deploy/grafana/)"

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "poa-filter needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

venv: $(BIN)/.installed

kafka-up:
	@$(KAFKA) up

kafka-down:
	@$(KAFKA) down

kafka-secure-up:
	@bash deploy/kafka/secure-kafka.sh up

kafka-secure-down:
	@bash deploy/kafka/secure-kafka.sh down

kafka-cluster-up:
	@bash deploy/kafka/cluster.sh up

kafka-cluster-down:
	@bash deploy/kafka/cluster.sh down

demo: venv kafka-up
	@bash deploy/demo.sh

# The broker is stopped afterwards whatever the outcome; the suite's exit status is kept.
test: venv kafka-up
	@status=0; $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) || status=$$?; \
	$(KAFKA) down; exit $$status

unit-test: venv
	$(BIN)/python -m pytest -q tests/unit

lint: venv
	$(BIN)/ruff check pipeline tests bench deploy/grafana
	$(BIN)/mypy pipeline bench tests deploy/grafana

prometheus:
	@bash deploy/prometheus/fetch.sh

dashboard: venv
	$(BIN)/python deploy/grafana/generate_dashboard.py

bench: venv kafka-up
	@status=0; $(BIN)/python -m bench.run_benchmark || status=$$?; $(KAFKA) down; exit $$status

bench-gb: venv
	$(BIN)/python -m bench.gb_estate --scale $(or $(SCALE),1)

clean:
	-$(KAFKA) down
	rm -rf $(VENV) .state demo-output bench-results
