# Two set-up commands: `make run` (dashboard on the shipped demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
PYTEST_ARGS ?= -n 2

.PHONY: run test install browser lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Debian's Chromium for the browser tests (never a browser download).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; \
	fi

run: install
	$(BIN)/streamlit run dashboard/streamlit_app.py --server.port $(PORT)

test: install browser
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; failing on purpose" >&2; exit 1; fi; \
	exit $$rc

lint: install
	$(BIN)/ruff check reranker dashboard tests benchmarks
	$(BIN)/ruff format --check reranker dashboard tests benchmarks
	$(BIN)/mypy

demo: install
	$(BIN)/reranker demo --out demo_data --jobs 2

bench: install
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_evaluate.py
	$(BIN)/python benchmarks/bench_dashboard.py
	$(BIN)/python benchmarks/bench_nlu.py
	$(BIN)/python benchmarks/bench_serving.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
