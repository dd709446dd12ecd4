# The two set-up commands of the README, plus the checks around them.
#   make run     creates .venv, installs, and runs the receiver on its built-in
#                defaults (TCP and UDP 11111, spool in ./var) until Ctrl-C
#   make test    installs what the tests need (the real rsyslog, syslog-ng, logger,
#                loggen included) and runs every test, the linters and the type check
#   make bench   the benchmarks of docs/benchmarks.md
#   make reliability  the failure scenarios of docs/reliability.md, at full size

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test programs lint bench reliability clean

$(STAMP): pyproject.toml
	@./.ci/bootstrap-venv "$(PYTHON)" "$(VENV)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/receiver run $(if $(CONFIG),-c $(CONFIG))

programs:
	tests/install-programs.sh

test: $(STAMP) programs
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(BIN)/ruff check formats receiver tests bench reliability
	$(BIN)/mypy

bench: $(STAMP) programs
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python bench/formats_bench.py --json bench/out/formats.json
	$(BIN)/python bench/ingest_bench.py -n 1000000 --repeat 3 --json bench/out/ingest.json
	$(BIN)/python bench/ingest_bench.py -n 1000000 --repeat 3 --cases tcp1,tcp100 --formats ali,rfc3164,rfc5424 --json bench/out/ingest-formats.json
	$(BIN)/python bench/scaling_bench.py --parts connections,sizes --json bench/out/scaling.json
	$(BIN)/python bench/scaling_bench.py --parts stages --json bench/out/stages.json
	$(BIN)/python bench/transport_bench.py --json bench/out/transport.json
	$(BIN)/python bench/relay_bench.py --json bench/out/relay.json
	$(BIN)/python bench/delivery_bench.py -n 1000000 --json bench/out/delivery.json
	$(BIN)/python bench/local_store_bench.py

reliability: $(STAMP) programs
	$(BIN)/python -m reliability.run --size full --json bench/out/reliability.json

clean:
	rm -rf $(VENV) .programs bench/out .pytest_cache .mypy_cache .ruff_cache .hypothesis
