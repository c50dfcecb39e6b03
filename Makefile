# iotcloud: `make demo` runs the local stack with the simulator; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
API_PORT ?= 8000
MOTO_PORT ?= 5000
WS_PORT ?= 8001
FUNCTION_URL_PORT ?= 8002
DEVICES ?= 50
DURATION ?= 60
STAGE ?= dev

.PHONY: venv test lint typecheck unit up demo bench clean package policies resources bootstrap cfn-lint assets browser-deps

venv: $(STAMP)

# The venv is installed from the locks only: pip and setuptools (requirements-pip.txt), then every
# package of requirements-dev.txt, at the locked version, each file checked against its hash (pip
# refuses a dependency the lock lacks), wheels only (no build step that could differ between machines).
# Then the project itself, editable, built by the locked setuptools: the devstack and device_sim commands.
PIP_LOCKED := $(PY) -m pip install --quiet --require-hashes --only-binary :all:
$(STAMP): requirements-pip.txt requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r requirements-pip.txt
	$(PIP_LOCKED) -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

# Regenerates the locks from the human-edited inputs (requirements*.in) with uv (pinned in the dev
# lock), for Python $(LOCK_PYTHON) on every platform (Linux x86_64 and aarch64 among them), hashes of
# every file of each release, keeping every version already locked. After editing a .in file:
# `make lock`; to move one package (and what it needs) to its newest allowed version:
# `make lock UPGRADE=websockets` (UPGRADE takes a space-separated list). Then `make venv`.
LOCK_PYTHON := 3.11
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version $(LOCK_PYTHON) --generate-hashes \
	--custom-compile-command "make lock" $(addprefix --upgrade-package ,$(UPGRADE))
.PHONY: lock lock-check
lock: venv
	$(UV_COMPILE) requirements-pip.in -o requirements-pip.txt
	$(UV_COMPILE) requirements.in -o requirements.txt
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt

# Builds two fresh venvs from the locks (in a temporary directory) and checks that they hold
# byte-identical packages (a few minutes; not part of make test, which checks the locks statically).
lock-check: venv
	$(PY) -m infra.check_lock reproduce

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy chalicelib app.py devstack device_sim infra reliability

test: lint typecheck assets browser-deps
	$(VENV)/bin/pytest

up: venv assets
	$(PY) -m devstack up --api-port $(API_PORT) --moto-port $(MOTO_PORT) --ws-port $(WS_PORT) --function-url-port $(FUNCTION_URL_PORT)

demo: venv assets
	$(PY) -m devstack demo --api-port $(API_PORT) --moto-port $(MOTO_PORT) --devices $(DEVICES) --duration $(DURATION)

# The dashboard's front-end libraries: npm ci (web/package-lock.json), then copied into
# chalicelib/web/static/vendor/ (not committed; Chalice packages it). Run it before chalice deploy.
VENDOR_STAMP := chalicelib/web/static/vendor/manifest.json
assets: $(VENDOR_STAMP)

$(VENDOR_STAMP): web/package.json web/package-lock.json web/build.mjs
	@command -v npm >/dev/null || { echo "make assets needs Node.js and npm (apt-get install nodejs npm)" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	node web/build.mjs

# Debian's Chromium for the browser tests (tests/browser); nothing to do when it is there.
CHROMIUM ?= /usr/bin/chromium
browser-deps:
	@if [ -x $(CHROMIUM) ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "the browser tests need $(CHROMIUM): install it with 'sudo apt-get install chromium'" >&2; exit 1; fi

bench: venv
	$(PY) -m bench

# Deployment (docs/DEPLOY.md). `make test` lints the prod template too (tests/deploy/test_package.py).
# build/$(STAGE)/sam.json + deployment.zip for `aws cloudformation package/deploy`; prints the zip size.
package: venv assets
	$(PY) -m infra.package --stage $(STAGE)

cfn-lint: package
	$(VENV)/bin/cfn-lint build/$(STAGE)/sam.json

# .chalice/policy-<stage>.json from infra/policies.py (the IAM coverage test checks them).
policies: venv
	$(PY) -m infra.policies

# The CloudFormation resources merged into Chalice's template, on standard output.
resources: venv
	$(PY) -m infra.resources --stage $(STAGE)

# Tables, bucket, queue, alarms, dashboard of a stage, before `chalice deploy` (DRY_RUN=1: the plan).
bootstrap: venv
	$(PY) -m infra.bootstrap --stage $(STAGE) $(if $(DRY_RUN),--dry-run,)

clean:
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache build

# The reliability suite (docs/RELIABILITY.md): schemathesis fuzzing, the bad-input corpus, the auth
# matrix, injected DynamoDB/S3 faults and a handler crash, a 500-device load run. Prints the figures,
# writes bench/results/reliability.json, exits non-zero on any failure (about 10 minutes on 2 cores).
.PHONY: reliability
reliability: venv
	$(PY) -m reliability
