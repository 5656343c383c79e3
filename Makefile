# The two commands of the README:  `make study`  and  `make test`.
VENV  ?= .venv
CORES ?= 2
BIN   := $(VENV)/bin
export PYTHONUNBUFFERED := 1

.PHONY: study test test-slow test-all env lint bench clean

env:
	@bash scripts/bootstrap_env.sh

## Run the whole default study on the bundled demo data (creates the environment if missing).
study: env
	$(BIN)/snakemake --cores $(CORES)

## Fast test suite (the README's test command); slow end-to-end tests are `make test-slow`.
test: env
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: env
	$(BIN)/python -m pytest -m slow -q || [ $$? -eq 5 ]  # 5: none collected

test-all: test test-slow

## ruff (format + lint), mypy, snakefmt and Snakemake's own linter.
lint: env
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

## Speed benchmarks (issue 14): recorder steps (incl. the top-k wide layer) and training epochs,
## recorded vs plain side by side; results + targets tables in benchmarks/results/. BENCH_ARGS=--quick: smoke run.
BENCH_ARGS ?=
bench: env
	$(BIN)/python benchmarks/bench_recorder.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_training.py $(BENCH_ARGS)

clean:
	rm -rf results .snakemake
