# leakfree: `make run` sets everything up and runs the pipeline on the demo library;
# `make test` runs the tests. `make help` lists every target.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JARS_DIR := .cache/jars
DEMO := demo/library
WAREHOUSE := warehouse
# Must match the pyspark/delta-spark pins in pyproject.toml.
DELTA_ARTIFACTS := io.delta:delta-spark_4.2_2.13:4.4.0 io.delta:delta-storage:4.4.0

export LEAKFREE_JARS_DIR := $(CURDIR)/$(JARS_DIR)
export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(BIN)/python
# librosa compiles with numba on first use; cache the machine code between runs.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

.PHONY: help setup jars run test test-nights test-contamination test-cluster test-faults browser check bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(JARS_DIR)/.fetched ## create the venv, install the package, fetch the Delta JARs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

jars: $(JARS_DIR)/.fetched ## fetch the Delta Lake JARs from Maven Central into .cache/jars

$(JARS_DIR)/.fetched: Makefile
	mkdir -p $(JARS_DIR)
	for artifact in $(DELTA_ARTIFACTS); do \
		mvn --batch-mode --quiet dependency:copy -Dartifact=$$artifact -DoutputDirectory=$(JARS_DIR) || exit 1; \
	done
	touch $@

run: setup ## generate the demo library and run the whole pipeline on it
	$(BIN)/leakfree demo-data $(DEMO)
	$(BIN)/leakfree run --library $(DEMO) --metadata $(DEMO)/metadata.csv --warehouse $(WAREHOUSE)

test: setup browser ## run the test suite (real Spark, real Delta tables)
	$(BIN)/pytest --durations=12

# The report's rendering test opens it in Debian's Chromium; install it where we can.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y -qq chromium >/dev/null; } || echo "no chromium: the browser test will be skipped"

bench: setup ## benchmarks (quality and speed on ../shared/corpus, the stress corpus, scaling); results in bench/results/
	command -v fpcalc >/dev/null || apt-get install -y libchromaprint-tools
	command -v sox >/dev/null && command -v ffmpeg >/dev/null || apt-get install -y sox libsox-fmt-all ffmpeg
	$(BIN)/python bench/features_bench.py
	$(BIN)/python bench/dedup_bench.py
	$(BIN)/python bench/stress_corpus.py
	$(BIN)/python bench/robustness_bench.py
	$(BIN)/python bench/verifier_bench.py
	$(BIN)/python bench/natural_bench.py
	$(BIN)/python bench/contamination_bench.py
	$(BIN)/python bench/splits_bench.py
	$(BIN)/python bench/canonical_bench.py
	$(BIN)/python bench/rescan_bench.py
	$(BIN)/python bench/scaling_bench.py

test-nights: setup ## several nightly runs over a growing library (rescans, incremental = full run, kept copies)
	$(BIN)/pytest -m nights tests/integration

test-contamination: setup ## a library run, then its check against an evaluation list: matches, errors, exports, report
	$(BIN)/pytest -m contamination tests/integration

test-cluster: setup ## start a local Spark standalone cluster and spark-submit the jobs to it
	$(BIN)/pytest -m cluster tests/cluster

test-faults: setup ## kill a run with SIGKILL in every stage (and once on another executor count), and the pairs stage between its rounds; rerun, compare with an undisturbed run
	$(BIN)/pytest -m faults tests/integration

check: setup ## lint
	$(BIN)/ruff check lib jobs tests bench

clean: ## remove generated data (keeps the venv and JARs)
	rm -rf $(DEMO) $(WAREHOUSE) spark-warehouse metastore_db derby.log
