# flowproof — see README.md. Every target works on a fresh clone: the stack's
# jars and the temporal binary are fetched or built into the cache on first use.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
STACKCTL := $(BIN)/stackctl
FORMAT ?= text
# Flink TaskManagers of `make up` (tests and drills: a lost TaskManager needs
# survivors); make demo and make bench start one unless TASKMANAGERS is given.
TASKMANAGERS ?= 3
# WORKER=1: `make up` also runs bin/worker as a component of the stack.
WORKER ?=
# DRILLS=1: `make up` also runs bin/drillworker, which carries out fault drills on the stack.
DRILLS ?=
# PROMETHEUS=1: `make up` also runs Prometheus (http://127.0.0.1:19090), scraping
# the worker, Temporal, Kafka and Flink; `make status` shows it.
PROMETHEUS ?=
# ONLY=worker (or kafka,refsvc ...): up, down and status act on these components only.
ONLY ?=
STACK_FLAGS = $(if $(ONLY),--only $(ONLY))
# PROFILE=secure: make demo runs on the secure profile (Kafka with SASL_SSL
# and SCRAM, Temporal with TLS), in a stack dir of its own (deploy/local/stackprofile.sh).
PROFILE ?= default

.PHONY: build stackctl up down status logs test test-unit test-cluster test-integration test-secure lint demo drills bench fmt vet image

build:
	$(GO) build -o $(BIN)/ ./deploy/local/stackctl ./worker ./starter ./deploy/refsvc ./deploy/local/drillworker

stackctl:
	$(GO) build -o $(BIN)/ ./deploy/local/stackctl

up: stackctl
	$(STACKCTL) up --taskmanagers $(TASKMANAGERS) $(if $(filter 1,$(WORKER)),--with-worker) $(if $(filter 1,$(DRILLS)),--with-drills) $(if $(filter 1,$(PROMETHEUS)),--with-prometheus) $(STACK_FLAGS) $(UP_FLAGS)

down: stackctl
	$(STACKCTL) down $(STACK_FLAGS)

status: stackctl
	$(STACKCTL) status $(if $(filter json,$(FORMAT)),--json) $(STACK_FLAGS)

logs: stackctl
	$(STACKCTL) logs $(COMPONENT)

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

test-unit:
	$(GO) test ./...

# The container image and Kubernetes manifests live in a module of their own
# (deploy/cluster), so that go-containerregistry and the Kubernetes API types
# stay out of the worker's dependencies; `./...` above does not reach it.
# The first run compiles the static (CGO_ENABLED=0) binaries, minutes on 2
# cores; after that it takes about 20 seconds.
test-cluster:
	cd deploy/cluster && $(GO) vet ./... && $(GO) test -count=1 ./...

# The container image without a container engine: bin/flowproof-image.tar
# (flowproof:dev), for docker load, podman load or crane push. The
# Dockerfile builds the same image with Docker.
image:
	@mkdir -p $(BIN)
	cd deploy/cluster && $(GO) run ./cmd/image -repo $(CURDIR) -o $(BIN)/flowproof-image.tar

# Integration and end-to-end tests against the running local stack (make up);
# `make test` also starts and stops the stack around them.
# golangci-lint with .golangci.yml (built into the cache on first use).
lint:
	bash deploy/local/lint.sh

test-integration: stackctl
	@$(STACKCTL) status --only kafka,flink,temporal,refsvc >/dev/null || { echo "make test-integration: the local stack is not up (make up; make status shows what is down)" >&2; exit 1; }
	$(GO) test -tags integration -count=1 -p 1 -timeout 45m ./...

# The main job: stack up, a worker, the default 1,000,000-message run to a
# verified result (MESSAGES=n for another size).
demo:
	PROFILE=$(PROFILE) bash deploy/local/demo.sh

# Every fault drill (kill a broker, a TaskManager, the JobManager, the
# endpoint, the worker; stop the token service, Temporal; endpoint error
# storms) at 200,000 messages each, and one table. MESSAGES=n, DRILL_NAMES="a b".
# docs/drills.md.
drills:
	bash deploy/local/drills.sh

# The whole suite: unit tests, then the integration tests against the real
# local stack, then the secure profile's tests (the end-to-end test among
# them) against a secure stack; each started once and stopped afterwards.
test:
	bash deploy/local/test.sh

# The secure profile's part of make test (the stack's own SASL_SSL and
# refusal tests, the health stage, the end-to-end run) on a secure stack in
# a stack dir of its own; a running default stack is stopped for them and
# started again afterwards.
test-secure:
	bash deploy/local/test-secure.sh

# Benchmarks printed side by side in one run: Go micro-benchmarks, then
# flowproof's produce and verify paths against Kafka's own perf tools and a
# bounded load on the endpoint, then one verified pipeline run set against
# the slowest of those stages (BENCH_E2E_MESSAGES=n, default 200,000; 0: no
# run). Starts what it needs of the stack if it is down (all of it and a
# worker, like make demo), and stops only what it started. docs/benchmarks.md.
bench:
	bash deploy/local/bench.sh
