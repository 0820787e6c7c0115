# The two commands of the README. Both run the idempotent set-up first.
.PHONY: demo test setup lint bench bench-registry bench-alerts reliability fuzz

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

# The whole system at the UK fleet's size on this machine (BENCHMARKS.md): ingest against the
# raw ceiling, the alarm path, the API under load, storage (about 15 minutes); then the same
# with identity enforced (production broker, TLS, a certificate per device) and the reconnect
# storm (about 40 minutes). BENCH_ARGS="--profile build/profiles" adds py-spy profiles to the
# first; BENCH_IDENTITY_ARGS goes to the second (--quick: a smoke run of a few minutes);
# --help lists the options of each.
bench: setup
	.venv/bin/python -m bench.system $(BENCH_ARGS)
	.venv/bin/python -m bench.system_identity $(BENCH_IDENTITY_ARGS)

# Registry figures (imports with and without broker credentials, lists on a large fleet;
# registration, import and revocation with device certificates at 0, 100k and 1.8M devices,
# about 10 minutes). BENCH_ARGS="--certificates-only --fleets 0,100000" runs a part.
bench-registry: setup
	.venv/bin/python -m bench.registry $(BENCH_ARGS)

# Alert engine figures (load, heartbeat throughput, alert latency, memory; 100k and 1M devices).
bench-alerts: setup
	.venv/bin/python -m bench.alerts

# Every fault of RELIABILITY.md at full size (several minutes each), then its results table.
reliability: setup
	TELECARE_FAULT_SCALE=full .venv/bin/pytest -m faults -s tests/faults
	.venv/bin/python -m tests.reliability_table full

# The decoder and API fuzzers with many more examples than `make test` runs.
fuzz: setup
	TELECARE_FUZZ_EXAMPLES=$${TELECARE_FUZZ_EXAMPLES:-2000} .venv/bin/pytest \
		tests/unit/test_wire_fuzz_decode.py tests/integration/test_wire_fuzz.py \
		tests/integration/test_api_fuzz.py
