# The two commands of the README's quickstart, on a fresh machine with Python >= 3.10 and make:
#
#   make study    # set up .venv, then the default study end to end (local Ray, Parquet, report)
#   make test     # set up .venv, then the test suite (the command CI runs: .ci/run)
#
# Set-up is done once (again when pyproject.toml or requirements.lock change): a virtualenv in
# $(VENV), torch, then the project with its test extras, pinned by requirements.lock (a pip
# constraints file: every user and CI resolve the same versions).
#
# torch: the project asks for a range (torch>=2.2); which build you get is your platform's business.
# If torch is already importable in $(VENV) nothing is installed. Otherwise `pip install $(TORCH)`:
# on Linux x86-64 PyPI's default build is the CUDA one (GPU machines want exactly that); on a
# CPU-only machine install the CPU build first, e.g. `make TORCH="torch==2.13.0" ...` where that
# wheel is on your pip index, or `.venv/bin/pip install torch --index-url <PyTorch's CPU wheel
# index>` (see PyTorch's "Get started" page) before `make`.
#
#   make study ARGS="-m +experiment=bound_check"   # any inal-sweep arguments
#   make test ARGS="-m 'not slow'"                 # any pytest arguments
#   make test-stress                               # make test 3 times in a row on a busy machine
#   make lock                                      # rewrite requirements.lock from a fresh venv

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: study test test-stress lock setup

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

study: $(STAMP)
	$(BIN)/inal-sweep $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

# The suite must hold on a busy machine (CI machines are shared): `make test` STRESS_RUNS times in
# a row while STRESS_LOAD processes spin on the CPUs. No retries, no reruns of failed tests: the
# first failing run stops it (exit status 1). The busy processes are killed however it ends.
STRESS_RUNS ?= 3
STRESS_LOAD ?= 2
test-stress: $(STAMP)
	@busy=""; trap 'kill $$busy 2>/dev/null' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	for i in $$(seq $(STRESS_LOAD)); do $(BIN)/python -c "while True: pass" & busy="$$busy $$!"; done; \
	for run in $$(seq $(STRESS_RUNS)); do \
	  start=$$(date +%s); \
	  echo "test-stress: run $$run of $(STRESS_RUNS), $(STRESS_LOAD) busy processes ($$busy )"; \
	  $(MAKE) --no-print-directory test ARGS="$(ARGS)" || { echo "test-stress: run $$run failed"; exit 1; }; \
	  echo "test-stress: run $$run passed in $$(( $$(date +%s) - start )) s"; \
	done; \
	echo "test-stress: $(STRESS_RUNS) of $(STRESS_RUNS) runs passed with $(STRESS_LOAD) busy processes"

# The lock: what a fresh venv resolves today, the project itself left out, torch without its local
# build label (+cpu / +cu12x), so that CPU and CUDA builds of the same version both satisfy it.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet "$(TORCH)"
	.venv-lock/bin/python -m pip install --quiet -e ".[test,mlflow]"
	( echo "# pip constraints for 'make setup' (written by 'make lock' with $$(.venv-lock/bin/python --version))"; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | sed -e 's/^\(torch==[^+]*\)+.*/\1/' ) > requirements.lock
	rm -rf .venv-lock
