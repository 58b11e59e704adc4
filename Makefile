# flowproof — see README.md. Every target works on a fresh clone: the stack's
# jars and the temporal binary are fetched or built into the cache on first use.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
STACKCTL := $(BIN)/stackctl
FORMAT ?= text
TASKMANAGERS ?= 3

.PHONY: build stackctl up down status logs test test-unit test-integration demo bench fmt vet

build:
	$(GO) build -o $(BIN)/ ./deploy/local/stackctl ./worker ./starter ./deploy/refsvc

stackctl:
	$(GO) build -o $(BIN)/ ./deploy/local/stackctl

up: stackctl
	$(STACKCTL) up --taskmanagers $(TASKMANAGERS) $(UP_FLAGS)

down: stackctl
	$(STACKCTL) down

status: stackctl
	$(STACKCTL) status $(if $(filter json,$(FORMAT)),--json)

logs: stackctl
	$(STACKCTL) logs $(COMPONENT)

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

test-unit:
	$(GO) test ./...

# The main job: stack up, a worker, the default 1,000,000-message run to a
# verified result (MESSAGES=n for another size).
demo:
	bash deploy/local/demo.sh

# The whole suite: unit tests, then integration and end-to-end tests against
# the real local stack (started once, stopped afterwards).
test:
	bash deploy/local/test.sh

# Benchmarks printed side by side in one run: Go micro-benchmarks, then
# flowproof's produce and verify paths against Kafka's own perf tools and a
# bounded load on the endpoint (starts Kafka and the reference services if
# they are down, and stops only what it started). docs/benchmarks.md.
bench:
	bash deploy/local/bench.sh
