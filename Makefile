# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# A local development token so the line can be exercised with signed requests.
# Production sets TWILIO_AUTH_TOKEN in the environment; this default never leaves `make run`.
DEV_TOKEN ?= dev-auth-token-not-secret

.PHONY: run test bench check clean system-deps

$(BIN)/ivr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# espeak-ng renders the prompts (pyttsx3 drives it on Linux). Installed when missing and we may;
# otherwise the line still works with Twilio's <Say>, so this only warns.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing espeak-ng (prompt rendering)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	  else echo "note: espeak-ng is not installed; prompts will use Twilio's <Say> (sudo apt-get install espeak-ng)"; fi; }

run: system-deps $(BIN)/ivr
	$(BIN)/ivr check
	-$(BIN)/ivr prompts build
	TWILIO_AUTH_TOKEN=$${TWILIO_AUTH_TOKEN:-$(DEV_TOKEN)} \
	IVR_API_TOKEN=$${IVR_API_TOKEN:-dev-api-token} \
	$(BIN)/ivr serve --host $(HOST) --port $(PORT)

test: system-deps $(BIN)/ivr
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(BIN)/ivr
	$(BIN)/ivr check

bench: $(BIN)/ivr
	$(BIN)/python bench/classify.py

clean:
	rm -rf $(VENV) instance .pytest_cache
