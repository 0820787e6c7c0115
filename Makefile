# The two commands of the README. Both run the idempotent set-up first.
.PHONY: demo test setup lint bench-registry bench-alerts

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/pytest

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# Registry figures (imports with and without broker credentials, lists on a large fleet).
bench-registry: setup
	.venv/bin/python -m tests.bench_registry

# Alert engine figures (load, heartbeat throughput, alert latency, memory; 100k and 1M devices).
bench-alerts: setup
	.venv/bin/python -m tests.bench_alerts
