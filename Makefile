# The inventory center. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: bench bench-scale simulate run-connectors soak
.PHONY: help install lint run test test-unit test-integration test-browser browser-deps stop reset kafka-start kafka-stop kafka-status bench-core bench-codec bench-query clean registry-start registry-stop registry-status connectors-start connectors-apply connectors-stop connectors-status test-connectors

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

run-connectors: $(STAMP) ## the demo through the connectors: WMS/TMS webhooks, OMS outbox via Debezium, ERP tables via JDBC sinks
	$(PY) -m streams.demo --connectors

lint: $(STAMP) ## ruff (lint and format check) and mypy (strict; pyproject.toml says what it checks)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

.PHONY: settings-doc
settings-doc: $(STAMP) ## rewrite the README's table of every INVENTORY_* setting from config/settings.py (a unit test checks it)
	$(PY) -m config.settings_doc

test: $(STAMP) browser-deps lint ## lint, then the whole test suite: unit, property, golden, and integration on a real local Kafka
	$(PY) -m pytest

test-unit: $(STAMP) ## the fast tests of the pure core and the contracts (no Kafka)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP) ## the tests on the real broker only
	$(PY) -m pytest tests/integration

soak: $(STAMP) ## the fault-injection suite's long profile: a larger day, more SIGKILLs, a broker restart, poison records (~10 min)
	INVENTORY_SOAK=1 $(PY) -m pytest tests/integration/test_fault_injection.py -v

test-browser: $(STAMP) browser-deps ## the dashboard in headless Chromium against a real worker
	$(PY) -m pytest tests/browser

# Debian's chromium, chromium-driver and a CJK font for the browser test, installed only when
# missing and only as root. When they cannot be installed this says what to install and does
# not stop `make test`: the browser test then skips with the reason, or fails under CI=true.
BROWSER_PKGS := chromium chromium-driver fonts-wqy-microhei
browser-deps: ## install headless Chromium, its driver and a CJK font (apt-get, as root) when missing
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && fc-list :lang=zh 2>/dev/null | grep -q .; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser-deps: installing $(BROWSER_PKGS) (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(BROWSER_PKGS) >/dev/null; } \
		|| echo "browser-deps: apt-get could not install $(BROWSER_PKGS); the browser test will skip (fail under CI=true)"; \
	else \
		echo "browser-deps: /usr/bin/chromium, /usr/bin/chromedriver or a CJK font is missing; as root run:"; \
		echo "  apt-get update && apt-get install -y $(BROWSER_PKGS)"; \
		echo "(the browser test skips without them, and fails when CI=true)"; \
	fi

registry-start: $(STAMP) ## start the local schema registry (Apicurio; Maven resolves it on first use)
	$(PY) -m connectors.local_registry start

registry-stop: $(STAMP) ## stop the local schema registry
	$(PY) -m connectors.local_registry stop

registry-status: $(STAMP) ## is the local schema registry running?
	$(PY) -m connectors.local_registry status

connectors-start: $(STAMP) ## start the local PostgreSQL (OMS/ERP) and Kafka Connect with Debezium (Maven resolves it on first use)
	$(PY) -m streams.local_kafka start
	$(PY) -m connectors.local_postgres start
	$(PY) -m connectors.local_connect start

connectors-apply: $(STAMP) ## apply connectors/*.json to the local Connect worker and print each connector's state
	$(PY) -m connectors.apply

connectors-stop: $(STAMP) ## stop Kafka Connect and the local PostgreSQL (the broker keeps running)
	$(PY) -m connectors.local_connect stop
	$(PY) -m connectors.local_postgres stop

connectors-status: $(STAMP) ## are the local PostgreSQL and Kafka Connect running, and with which connectors?
	-$(PY) -m connectors.local_postgres status
	-$(PY) -m connectors.local_connect status

test-connectors: $(STAMP) ## OMS outbox -> pipeline -> ERP on a real PostgreSQL, Kafka Connect and schema registry
	$(PY) -m pytest -m connectors tests/integration/test_connectors.py

stop: $(STAMP) ## stop the demo workers, Kafka Connect, PostgreSQL and the registry (when running) and the local broker
	$(PY) -m streams.demo stop

reset: $(STAMP) ## delete both demos' topics and worker state, the connectors demo's connectors and outbox/ERP rows
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
# BENCH_ARGS: e.g. --quick (a few minutes), --publish (copy the run over docs/benchmark.md), --help.
bench: $(STAMP) ## the benchmark (~15 min, from a stopped broker too): limit, pipeline, Quix peer, latency -> bench/results/runs/<stamp>/
	$(PY) -m bench.benchmark $(BENCH_ARGS)

bench-scale: $(STAMP) ## recovery time and throughput at 10k, 100k and 1M positions; docs/scale.md
	$(PY) -m bench.scale

simulate: $(STAMP) ## publish a seeded, realistic day of OMS/WMS/TMS traffic (python -m connectors.simulate --help)
	$(PY) -m connectors.simulate

# BENCH_ARGS as for bench: --quick (~2 min), --publish (copy the run over docs/read-benchmark.md/.png), --help.
# Needs Node.js; npm installs the load client (autocannon, pinned) into bench/.node/ on first use.
# The worker-view latency benchmark it replaced still runs on its own: python bench/query_bench.py.
bench-query: $(STAMP) ## read-path load: req/s and p50/p99/p999 at 1-128 clients, 1 and 2 read processes, idle and during drains (~8 min)
	$(PY) -m bench.read_bench $(BENCH_ARGS)

clean: ## remove the virtualenv and local data (jars, broker data, worker state)
	rm -rf $(VENV) .local
