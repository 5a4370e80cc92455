# Two commands on a fresh machine (Python >= 3.11, make):
#   make run   set up .venv, install pinned dependencies, run the default sweep and write results/report.html
#   make test  same environment, run the test suite
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: run test lint report clean-results

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --cores $(CORES)
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --report results/report.html

test: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" python -m pytest

lint: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --lint

report: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --report results/report.html

clean-results:
	rm -rf results logs
