# Two entry points on a fresh machine: `make book` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/nattools
SHARED_CIFAR := ../shared/data/cifar10-jpg-train50k.tar.gz

# The book: strict build (warnings and cell errors fail it), execution cache in _build/.jupyter_cache.
BOOK_BUILD := $(VENV)/bin/jupyter-book build -W -n --keep-going book/
# JavaScript the built pages load from their own static files (no CDN): fetched once with npm into
# book/_vendor (git-ignored; book/_ext/offline_assets.py copies it to _build/html/_static/vendor).
# Without it, `jupyter-book build book/` makes pages that load these versions from cdn.jsdelivr.net.
VENDOR := book/_vendor
NPM_PACKAGES := @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 mathjax@3.2.2
NPM_DIR := $(CACHE)/npm
# Notebook tests: every chapter runs top to bottom with small budgets; plotly ids sanitised. They run on
# scikit-learn's digits (NATTOOLS_DATASET), the reader with no CIFAR-10 and no network; the strict build
# runs every chapter on CIFAR-10 where it is at hand. `make nbval NBVAL_DATASET=cifar10` for CIFAR-10.
NBVAL_DATASET ?= digits
NBVAL := NATTOOLS_BUDGET=small NATTOOLS_DATASET=$(NBVAL_DATASET) $(PY) -m pytest -q --nbval-lax \
	--nbval-sanitize-with tests/book/nbval_sanitize.cfg book/*.ipynb

.PHONY: setup data vendor fetch-vendor chromium book test nbval bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# All 50,000 CIFAR-10 training JPEGs from ../shared (if present) into the cache, once (the stamp names
# the archive, so an older unpacked copy, such as the 25,000-image subset, is replaced); offline
# machines without it use digits.
data:
	@if [ -f $(SHARED_CIFAR) ] && [ "$$(cat $(CACHE)/cifar10-jpg/.source 2>/dev/null)" != "$(notdir $(SHARED_CIFAR))" ]; then \
		rm -rf $(CACHE)/cifar10-jpg && mkdir -p $(CACHE) && tar -xzf $(SHARED_CIFAR) -C $(CACHE) && \
		echo "$(notdir $(SHARED_CIFAR))" > $(CACHE)/cifar10-jpg/.source && echo "unpacked CIFAR-10 into $(CACHE)"; fi

# Fetched again only when NPM_PACKAGES changes (the stamp records the list).
vendor:
	@if [ "$$(cat $(VENDOR)/.fetched 2>/dev/null)" != "$(NPM_PACKAGES)" ]; then \
		$(MAKE) --no-print-directory fetch-vendor; fi

fetch-vendor:
	mkdir -p $(NPM_DIR) $(VENDOR)
	cd $(NPM_DIR) && npm install --no-audit --no-fund --no-save --loglevel=error $(NPM_PACKAGES)
	rm -rf $(VENDOR)/html-manager $(VENDOR)/mathjax && mkdir -p $(VENDOR)/html-manager $(VENDOR)/mathjax
	cp $(NPM_DIR)/node_modules/requirejs/require.js $(VENDOR)/
	cd $(NPM_DIR)/node_modules/@jupyter-widgets/html-manager/dist && \
		cp embed-amd.js *.woff *.woff2 *.ttf *.eot *.svg $(CURDIR)/$(VENDOR)/html-manager/
	cd $(NPM_DIR)/node_modules/mathjax/es5 && cp -r tex-chtml.js input output ui a11y adaptors $(CURDIR)/$(VENDOR)/mathjax/
	echo "$(NPM_PACKAGES)" > $(VENDOR)/.fetched

# Headless Chromium for the browser test (Debian package).
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core; }

book: setup data vendor
	$(BOOK_BUILD)

nbval: setup data
	$(NBVAL)

# The single test command (CI runs it): the core's unit tests (no book dependencies needed), the book
# wing's unit tests, every chapter under nbval on the digits, then the strict book build (every chapter
# on CIFAR-10 where it is at hand; cached) and the headless-browser check of its pages.
test: setup data vendor chromium
	$(PY) -m pytest -q tests/core
	$(PY) -m pytest -q tests/study
	$(NBVAL)
	$(BOOK_BUILD)
	NATTOOLS_BOOK_HTML=_build/html $(PY) -m pytest -q tests/book

bench: setup data
	$(PY) -m nattools bench

clean:
	rm -rf _build
