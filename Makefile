# The two commands a newcomer runs: `make demo` and `make test`. Both create .venv and install.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-packages test demo bench lint dashboards clean

# Debian packages the tests need (Chromium for the report, promtool for alert rules);
# installed with apt-get when missing and we are root, as on CI.
system-packages:
	@bash infra/system-packages.sh

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: install system-packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider

demo: install
	$(VENV)/bin/carbon-accounts demo

bench: install
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/bench --bench-full -s

# Grafana dashboards as code (dashboards/*.py) -> dashboards/json/*.json, committed
dashboards: install
	$(PY) -m dashboards.generate

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf var .pytest_cache
