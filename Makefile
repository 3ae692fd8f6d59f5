# The inventory center. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration stop reset kafka-start kafka-stop kafka-status bench-core bench-codec clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv with the locked Python dependencies

run: $(STAMP) ## the main job: local Kafka, topics, a worker (left running), a sample day, the inventory
	$(PY) -m streams.demo

test: $(STAMP) ## the whole test suite: unit, property, golden, and integration on a real local Kafka
	$(PY) -m pytest

test-unit: $(STAMP) ## the fast tests of the pure core and the contracts (no Kafka)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP) ## the tests on the real broker only
	$(PY) -m pytest tests/integration

stop: $(STAMP) ## stop the demo worker and the local broker
	$(PY) -m streams.demo stop

reset: $(STAMP) ## delete the pipeline's topics and local worker state (broker keeps running)
	$(PY) -m streams.demo reset

kafka-start: $(STAMP) ## start the local Kafka broker (Maven resolves it on first use)
	$(PY) -m streams.local_kafka start
kafka-stop: $(STAMP) ## stop the local Kafka broker
	$(PY) -m streams.local_kafka stop
kafka-status: $(STAMP) ## is the local broker running?
	$(PY) -m streams.local_kafka status

bench-core: $(STAMP) ## core throughput, commands/s on one core (pure Python, no I/O)
	$(PY) bench/core_bench.py
bench-codec: $(STAMP) ## Avro encode/decode cost per message
	$(PY) bench/codec_bench.py

clean: ## remove the virtualenv and local data (jars, broker data, worker state)
	rm -rf $(VENV) .local
