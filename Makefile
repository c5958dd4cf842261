# caretime: `make run` starts the product, `make test` runs every test (lint included).
# Needs only python3 and make: uv is bootstrapped from PyPI into .uv/, the project into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
DEMO_ENV := CARETIME_API_KEY=$${CARETIME_API_KEY:-ct_demo_key_change_me} CARETIME_DEMO_DATA=$${CARETIME_DEMO_DATA:-true}

.PHONY: run test lint bench install clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.synced

run: install
	$(DEMO_ENV) $(BIN)/caretime serve $(ARGS)

lint: install
	$(BIN)/ruff check src tests bench migrations scripts
	$(BIN)/ruff format --check src tests bench migrations scripts
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	@for bench in bench/*.py; do echo "== $$bench"; $(BIN)/python $$bench || exit 1; done

clean:
	rm -rf .uv $(VENV) var .pytest_cache .mypy_cache .ruff_cache
