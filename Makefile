# iotcloud: `make demo` runs the local stack with the simulator; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
API_PORT ?= 8000
MOTO_PORT ?= 5000
WS_PORT ?= 8001
DEVICES ?= 50
DURATION ?= 60
STAGE ?= dev

.PHONY: venv test lint typecheck unit up demo bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy chalicelib app.py devstack device_sim

test: lint typecheck
	$(VENV)/bin/pytest

up: venv
	$(PY) -m devstack up --api-port $(API_PORT) --moto-port $(MOTO_PORT) --ws-port $(WS_PORT)

demo: venv
	$(PY) -m devstack demo --api-port $(API_PORT) --moto-port $(MOTO_PORT) --devices $(DEVICES) --duration $(DURATION)

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache
