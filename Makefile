# The two set-up commands of the README, plus the checks around them.
#   make test    installs what the tests need (the real rsyslog, syslog-ng, logger,
#                loggen included) and runs every test, the linters and the type check
#   make bench   the benchmarks of docs/benchmarks.md

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test programs lint bench clean

$(STAMP): pyproject.toml
	@./.ci/bootstrap-venv "$(PYTHON)" "$(VENV)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(STAMP)

programs:
	tests/install-programs.sh

test: $(STAMP) programs
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(BIN)/ruff check formats receiver tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/formats_bench.py --json bench/out/formats.json

clean:
	rm -rf $(VENV) .programs bench/out .pytest_cache .mypy_cache .ruff_cache .hypothesis
