# Weika: the two commands are `make run` and `make test`; everything else is a step they take.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every package under services/ (each has its own pyproject.toml).
SERVICES := $(patsubst services/%/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
PROTOS := $(shell find proto -name '*.proto')
STAMP := $(VENV)/.installed

.PHONY: run test bench proto infra-up infra-down infra-status lint lock clean venv

venv: $(STAMP) libs/weika-contracts/weika/.generated

$(STAMP): requirements.txt constraints.txt $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(MAKE) --no-print-directory proto
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt \
		-e libs/weika-contracts -e libs/weika-kit $(foreach s,$(SERVICES),-e services/$(s))
	touch $@

proto: libs/weika-contracts/weika/.generated

libs/weika-contracts/weika/.generated: $(PROTOS) proto/topics.yaml tools/gen_proto.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import grpc_tools" 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) tools/gen_proto.py

run: venv
	$(PY) tools/run.py

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

infra-up: venv
	@$(PY) tools/infra.py up

infra-down:
	@$(PYTHON) tools/infra.py down

infra-status:
	@$(PYTHON) tools/infra.py status

lint: venv
	$(VENV)/bin/ruff check .

lock:
	rm -rf /tmp/weika-lock && $(PYTHON) -m venv /tmp/weika-lock
	/tmp/weika-lock/bin/pip install -q -r requirements.txt
	( echo "# Every installed package, pinned (pip freeze of requirements.txt). Regenerate with \`make lock\`."; \
	  /tmp/weika-lock/bin/pip freeze ) > constraints.txt

clean:
	rm -rf $(VENV) libs/weika-contracts/weika var
