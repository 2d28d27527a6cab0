# Sieve — make help lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin
# The project-local PostgreSQL (scripts/pg.sh) unless DATABASE_URL is given:
# a shell snippet that sets url or fails the recipe. ($(shell) would drop
# pg.sh's exit status, and the integration tests would then skip.)
PGURL_SH  = if [ -n "$(DATABASE_URL)" ]; then url="$(DATABASE_URL)"; \
	elif ! url=$$(scripts/pg.sh start); then \
	echo "make: PostgreSQL did not start (scripts/pg.sh start failed, see above); set DATABASE_URL or fix it" >&2; exit 1; fi
FUZZTIME ?= 30s
# Every fuzz target also runs briefly in make test: a count, not a time, since
# a time bound can end in the toolchain's "context deadline exceeded" flake.
TESTFUZZTIME ?= 10000x
BENCHTIME ?= 1x

export GOFLAGS ?= -buildvcs=false

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.PHONY: build
build: ## build brokerd, brokerctl and wasim into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: run
run: build ## start PostgreSQL, migrate, create dev keys, seed the demo, start wasim and brokerd on :8080
	@scripts/run.sh

.PHONY: pg
pg: ## start the project-local PostgreSQL and print its URL
	@scripts/pg.sh start

.PHONY: test
test: ## every test (Go, Rego, PostgreSQL integration, browser) against a real PostgreSQL
	@set -euo pipefail; $(PGURL_SH); \
	scripts/chromium.sh >/dev/null; \
	tests/jose/install.sh; \
	scripts/witness.sh >/dev/null; \
	SIEVE_REQUIRE_DB=1 SIEVE_TEST_DATABASE_URL="$$url" $(GO) test -count=1 -timeout 40m ./...
	@scripts/fuzz.sh $(TESTFUZZTIME)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

.PHONY: bench
bench: build ## the benchmarks of SPEC §8, each beside its same-run baseline
	@set -euo pipefail; $(PGURL_SH); SIEVE_TEST_DATABASE_URL="$$url" scripts/bench.sh

.PHONY: lint
lint: ## go vet, staticcheck, redocly lint of the OpenAPI document, Regal over the policies
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@scripts/lint-openapi.sh
	@scripts/lint-rego.sh

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@scripts/fuzz.sh $(FUZZTIME)

.PHONY: clean
clean: ## stop PostgreSQL and remove .data/ and bin/
	-scripts/pg.sh clean
	rm -rf .data $(BIN)
