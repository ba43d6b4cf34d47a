# Everything a contributor or CI needs: `make test` installs its own tools.
GO                    ?= go
GOLANGCI_LINT_VERSION ?= v2.15.0
GOBIN                 ?= $(shell $(GO) env GOPATH)/bin
GOLANGCI_LINT         := $(GOBIN)/golangci-lint
# Debian packages the example and browser tests run.
DEB_PACKAGES          := prometheus prometheus-alertmanager chromium

# The VERSION file is the one source of the version: the binary's
# --version, the image tag `make docker` builds, and the chart's appVersion
# (the chart's default image tag). deploy/version_test.go checks that they
# agree; REVISION tells builds of one version apart.
VERSION  ?= $(shell cat VERSION)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VERSION_PKG := github.com/prometheus/common/version
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(USER)@make \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

.PHONY: all build test deps fmt-check tidy-check vet lint unit chart examples demo bench fuzz docker screenshot

all: build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o partnercenter_exporter .

demo:
	$(GO) run . --demo

## test: everything CI runs. Installs pinned tools and Debian packages first.
test: deps fmt-check tidy-check vet lint unit

deps:
	@scripts/install-deps.sh $(DEB_PACKAGES)
	@test -x $(GOLANGCI_LINT) && $(GOLANGCI_LINT) version 2>/dev/null | grep -q "$(GOLANGCI_LINT_VERSION:v%=%)" || \
		GOBIN=$(GOBIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# deploy/ (the Helm chart's tests) and e2e/ (the process-level suites:
# examples, Prometheus end to end, browser, Dockerfile) are modules of
# their own, so that the exporter's go.mod needs neither Helm nor
# Prometheus: ./... from the root does not reach them, so each target
# runs there too.
MODULES := . deploy e2e

vet:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

lint:
	@set -e; for m in $(MODULES); do (cd $$m && $(GOLANGCI_LINT) run ./...); done

## tidy-check: every module's go.mod and go.sum are exactly what its code needs.
tidy-check:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff); done

# The chart tests run without -race: they start no goroutines of their
# own, and a race build of Helm and the Kubernetes types costs about
# 2.5 CPU-minutes more from a cold cache (8 against 5.5; warm: 12s, 8s).
# The root's ./... is the fast loop (no Chromium, Prometheus or Helm);
# e2e/ builds the binary and runs it with them.
unit:
	$(GO) test -race -count=1 -timeout 15m ./...
	cd e2e && $(GO) test -race -count=1 -timeout 15m ./...
	cd deploy && $(GO) test -count=1 -timeout 15m ./...

## chart: only the Helm chart's tests.
chart:
	cd deploy && $(GO) test -count=1 ./...

## examples: only the tests of examples/, the demo, the Dockerfile and Prometheus end to end.
examples: deps
	$(GO) test -race -count=1 -run 'Demo|ShippedCommandLines' . ./daemon/
	cd e2e && $(GO) test -race -count=1 -run 'Example|Prometheus|Docker' ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: run every fuzz target for FUZZTIME, one after another (go test
## takes one -fuzz target per package per run). Their seeds already run as
## ordinary tests in `make unit`.
FUZZTIME     ?= 30s
FUZZ_TARGETS := \
	./partnercenter:FuzzDecodeJSON \
	./partnercenter:FuzzDecodeXML \
	./partnercenter:FuzzParseTime \
	./partnercenter:FuzzParseStatus \
	./config:FuzzConfigParse \
	./batchpages:FuzzBatchPath

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## screenshot: refresh docs/batch-page.png from the real-browser test.
screenshot: deps
	cd e2e && UPDATE_SCREENSHOT=1 $(GO) test -count=1 -run TestBrowserDemoPages .

docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg BRANCH=$(BRANCH) --build-arg BUILD_DATE=$(BUILD_DATE) \
		-t partnercenter_exporter:$(VERSION) .
