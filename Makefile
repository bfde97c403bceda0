# The two commands of the README: `make run` and `make test`. Everything else is a step of them.
SWIFT ?= swift
BROKER := .build/release/broker

.PHONY: run test deps build bench clean

run: deps build
	$(BROKER) serve

build:
	$(SWIFT) build -c release --product broker

test: deps
	scripts/test.sh

bench: deps
	$(SWIFT) run -c release broker-bench jwt

deps:
	@scripts/install-deps.sh

clean:
	rm -rf .build .venv-tests
