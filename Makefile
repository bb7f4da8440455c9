# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# A local development token so the line can be exercised with signed requests.
# Production sets TWILIO_AUTH_TOKEN in the environment; this default never leaves `make run`.
DEV_TOKEN ?= dev-auth-token-not-secret

.PHONY: run test bench check clean

$(BIN)/ivr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/ivr
	$(BIN)/ivr check
	-$(BIN)/ivr prompts build
	TWILIO_AUTH_TOKEN=$${TWILIO_AUTH_TOKEN:-$(DEV_TOKEN)} \
	IVR_API_TOKEN=$${IVR_API_TOKEN:-dev-api-token} \
	$(BIN)/ivr serve --host $(HOST) --port $(PORT)

test: $(BIN)/ivr
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(BIN)/ivr
	$(BIN)/ivr check

bench: $(BIN)/ivr
	$(BIN)/python bench/classify.py

clean:
	rm -rf $(VENV) instance .pytest_cache
