# The set-up commands named in the README:
#   make run    build and run the daemon on its built-in defaults
#   make test   install what the tests need and run the whole test suite (with `make deb`)
#   make deb    build the Debian package (release build) and check its file list
# Both install missing Debian packages with apt-get when run as root.

CARGO ?= cargo

.PHONY: run test deps build lint deb bench

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --bins

run: build
	./target/release/tarpitd

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

deb: deps
	scripts/check-deb.sh

# The package is built and checked before the tests, and doc tests run first, so that the run
# ends with the whole suite's summary.
test: lint deb
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
