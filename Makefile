# The two commands of the README: `make run` and `make test`. Everything else is a step of them.
SWIFT ?= swift
BROKER := .build/release/broker

.PHONY: run test deps build bench fuzz sanitize clean

run: deps build
	$(BROKER) serve

build:
	$(SWIFT) build -c release --product broker

test: deps
	scripts/test.sh

bench: deps
	$(SWIFT) run -c release broker-bench jwt

# The parsers under libFuzzer, FUZZ_SECONDS each (docs/fuzzing.md); `make test` runs them briefly.
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# The test suite under AddressSanitizer, then ThreadSanitizer (not part of `make test`).
sanitize: deps
	scripts/sanitize.sh address
	scripts/sanitize.sh thread

deps:
	@scripts/install-deps.sh

clean:
	rm -rf .build .build-fuzz .build-sanitize-address .build-sanitize-thread .venv-tests
