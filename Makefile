# The front door. `make run` starts a local cluster; `make test` runs every test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run gen gen-check lint test bench deploy clean vendor-web

setup: $(STAMP)
	@bash scripts/setup_services.sh

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,deploy]'
	@touch $(STAMP)

run: setup
	$(PY) -m devcluster

gen: $(STAMP)
	$(PY) -m devcluster.gen

gen-check: $(STAMP)
	$(PY) -m devcluster.gen --check

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m devcluster.gen --check

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Not part of `make test`: prints each figure beside its floor, writes bench/results.json.
bench: setup
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
	$(PY) -m bench $(BENCH_ARGS)

# Brings the hosts of an inventory to a running cluster over SSH (deploy/, README Deployment):
# checks the inventory, builds the wheels, makes the local secrets, runs the playbook, and
# checks the cluster. BOB_VERSION=x.y.z+tag builds our wheel with that version.
deploy: $(STAMP)
	@test -n "$(INVENTORY)" || { echo "usage: make deploy INVENTORY=path/to/inventory.yml" >&2; exit 2; }
	$(PY) -m deploy $(if $(BOB_VERSION),--version $(BOB_VERSION)) $(DEPLOY_ARGS) "$(INVENTORY)"

# Not part of setup: the web page's JavaScript library is committed; this re-fetches it
# from the npm registry (needs npm) when its version changes.
vendor-web:
	bash scripts/vendor_web.sh

clean:
	rm -rf $(VENV) data
