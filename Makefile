# facenet-flow: `make demo` runs the whole pipeline on generated data; `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.facenet-installed
LOCK := requirements.lock
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test lint install lock clean-workspace

install: $(STAMP)

# (Re)install only when the environment is missing or pyproject.toml or the lock changed: the exact
# versions of requirements.lock (hash-checked), then the project itself, then a consistency check.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# Re-resolve requirements.lock from pyproject.toml, keeping the locked versions that still fit
# (UPGRADE=--upgrade takes the newest allowed ones), then install it. Needs the installed venv (uv).
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --generate-hashes \
		--custom-compile-command "make lock" $(UPGRADE) --output-file $(LOCK)
	$(MAKE) install

demo: $(STAMP)
	$(BIN)/facenet demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-workspace:
	rm -rf workspace
