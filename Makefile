# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Both install from the lock files in requirements/ (exact versions); `make lock` refreshes them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# A local development token so the line can be exercised with signed requests.
# Production sets TWILIO_AUTH_TOKEN in the environment; this default never leaves `make run`.
DEV_TOKEN ?= dev-auth-token-not-secret

# The lock: requirements/run.txt pins what serving the line needs plus the production extras
# (RUN_EXTRAS: installed on demand, `pip install -c requirements/run.txt '.[postgres]'`);
# requirements/test.txt adds the test tools at the same versions. uv resolves for every platform
# (--universal) at the oldest Python we support. A new production extra goes in RUN_EXTRAS.
RUN_EXTRAS  := postgres redis
TEST_EXTRAS := test $(RUN_EXTRAS)
UV_VERSION := 0.13.8
LOCK_FLAGS := --universal --python-version 3.11 --custom-compile-command "make lock" --quiet

.PHONY: run test bench check clean system-deps lock lock-upgrade

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamps: each set is (re)installed when pyproject.toml or its lock file changes.
$(VENV)/.run-set: pyproject.toml requirements/run.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements/run.txt -e .
	touch $@

$(VENV)/.test-set: pyproject.toml requirements/test.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements/test.txt -e '.[test]'
	touch $@

# A developer's venv: everything the tests need (`make .venv/bin/ivr`).
$(BIN)/ivr: $(VENV)/.test-set
	touch $@

# Refresh the lock after editing dependencies in pyproject.toml: keeps every existing pin and
# resolves only what is new or no longer fits. `make lock-upgrade` moves everything to the newest.
lock: $(BIN)/python
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml $(RUN_EXTRAS:%=--extra %) $(LOCK_FLAGS) $(UPGRADE) \
	  -o requirements/run.txt
	$(BIN)/uv pip compile pyproject.toml $(TEST_EXTRAS:%=--extra %) -c requirements/run.txt \
	  $(LOCK_FLAGS) $(UPGRADE) -o requirements/test.txt

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# espeak-ng renders the prompts (pyttsx3 drives it on Linux). Installed when missing and we may;
# otherwise the line still works with Twilio's <Say>, so this only warns.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing espeak-ng (prompt rendering)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	  else echo "note: espeak-ng is not installed; prompts will use Twilio's <Say> (sudo apt-get install espeak-ng)"; fi; }

run: system-deps $(VENV)/.run-set
	$(BIN)/ivr check
	-$(BIN)/ivr prompts build
	TWILIO_AUTH_TOKEN=$${TWILIO_AUTH_TOKEN:-$(DEV_TOKEN)} \
	IVR_API_TOKEN=$${IVR_API_TOKEN:-dev-api-token} \
	$(BIN)/ivr serve --host $(HOST) --port $(PORT)

test: system-deps $(VENV)/.test-set
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(VENV)/.run-set
	$(BIN)/ivr check

bench: $(VENV)/.test-set
	$(BIN)/python bench/classify.py

clean:
	rm -rf $(VENV) instance .pytest_cache
