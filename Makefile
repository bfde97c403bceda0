# The two commands of the README: `make run` and `make test`. Everything else is a step of them.
SWIFT ?= swift
BROKER := .build/release/broker

.PHONY: run test deps deps-test build bench fuzz sanitize clean

# `run` needs only what building and running need; `build` waits for it, also under make -j.
run: build
	$(BROKER) serve

build: deps
	$(SWIFT) build -c release --product broker

test: deps-test
	scripts/test.sh

bench: deps
	$(SWIFT) run -c release broker-bench jwt

# The parsers under libFuzzer, FUZZ_SECONDS each (docs/fuzzing.md); `make test` runs them briefly.
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# The test suite under AddressSanitizer, then ThreadSanitizer (not part of `make test`).
sanitize: deps-test
	scripts/sanitize.sh address
	scripts/sanitize.sh thread

deps:
	@scripts/install-deps.sh run

# What the tests use besides: Python, HAProxy, nginx, sqlite3, PostgreSQL, Chromium (scripts/install-deps.sh).
deps-test:
	@scripts/install-deps.sh test

clean:
	rm -rf .build .build-fuzz .build-sanitize-address .build-sanitize-thread .venv-tests
