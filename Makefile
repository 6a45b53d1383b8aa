# Two entry points on a fresh machine: `make book` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/nattools
SHARED_CIFAR := ../shared/data/cifar10-jpg-train25k.tar.gz

.PHONY: setup data book test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# CIFAR-10 JPEGs from ../shared (if present) into the cache; offline machines without it use digits.
data:
	@if [ -f $(SHARED_CIFAR) ] && [ ! -d $(CACHE)/cifar10-jpg/train ]; then \
		mkdir -p $(CACHE) && tar -xzf $(SHARED_CIFAR) -C $(CACHE) && echo "unpacked CIFAR-10 into $(CACHE)"; fi

book: setup data
	$(VENV)/bin/jupyter-book build book/

test: setup data
	$(PY) -m pytest -q tests

bench: setup data
	$(PY) -m nattools bench

clean:
	rm -rf _build
