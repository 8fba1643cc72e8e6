# The two set-up commands named in the README:
#   make run    build and run the daemon on its built-in defaults
#   make test   install what the tests need and run the whole test suite
# Both install missing Debian packages with apt-get when run as root.

CARGO ?= cargo

.PHONY: run test deps build lint bench

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --bins

run: build
	./target/release/tarpitd

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Doc tests first, so that the run ends with the whole suite's summary.
test: lint
	$(CARGO) test --doc
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --lib --bins --tests --no-fail-fast; \
	else \
		$(CARGO) test --workspace --lib --bins --tests --no-fail-fast; \
	fi

bench: deps
	scripts/bench-parse.sh
	scripts/bench-stall.sh
	scripts/bench-netfilter.sh
