# Sluice build, generation and test entry points. `make help` lists them.
#
# Everything the tests need is built from source through the Go module proxy
# and cached outside the source tree (SLUICE_CACHE), so a fresh machine needs
# only Go; a warm one skips the builds.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

SLUICE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sluice

# Versions come from the nested tool modules, so go.mod is the only place to bump them.
# modver(module, go.mod) prints the version a go.mod requires of a module.
modver = $(shell awk '{for (i = 1; i < NF; i++) if ($$i == "$(1)" && $$(i+1) ~ /^v[0-9]/) {print $$(i+1); exit}}' $(2))
K8S_VERSION              := $(call modver,k8s.io/kubernetes,hack/tools/k8s/go.mod)
ETCD_VERSION             := $(call modver,go.etcd.io/etcd/server/v3,hack/tools/etcd/go.mod)
CONTROLLER_TOOLS_VERSION := $(call modver,sigs.k8s.io/controller-tools,hack/tools/controller-gen/go.mod)

# ENVTEST_DIR holds kube-apiserver and etcd for envtest. A KUBEBUILDER_ASSETS
# already set in the environment wins and nothing is built.
ENVTEST_DIR ?= $(SLUICE_CACHE)/envtest/k8s-$(K8S_VERSION)-etcd-$(ETCD_VERSION)
ifeq ($(origin KUBEBUILDER_ASSETS),environment)
ENVTEST_ASSETS := $(KUBEBUILDER_ASSETS)
else
ENVTEST_ASSETS := $(ENVTEST_DIR)
endif
CONTROLLER_GEN := $(SLUICE_CACHE)/bin/controller-gen-$(CONTROLLER_TOOLS_VERSION)

K8S_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION:v%=%))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION:v%=%))) \
	-X k8s.io/component-base/version.gitTreeState=clean

# The envtest stories of controllers/rollout take about 20 minutes in one
# process and 7 in their three shards (internal/testenv.RunInShards), beside
# the other packages; each shard gets this timeout: go test's default of 10
# minutes per package is too close for one process.
GO_TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Write deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Write the CRDs (config/crd) and the manager's RBAC role (config/rbac).
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=sluice-manager paths=./controllers/... output:rbac:artifacts:config=config/rbac

.PHONY: verify-generated
verify-generated: generate manifests chart-crds ## Fail when the committed generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config charts/sluice/crds)" ]; then \
		git status --porcelain -- api config charts/sluice/crds; git diff --stat -- api config charts/sluice/crds; \
		echo "generated files are stale: run 'make generate manifests' and commit the result" >&2; exit 1; \
	fi

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: chart-crds
chart-crds: manifests ## Copy the generated CRDs into the Helm chart.
	cp config/crd/bases/*.yaml charts/sluice/crds/

.PHONY: vet
vet: ## go vet and a gofmt check.
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

.PHONY: build
build: ## Build the binaries (manager, loadtester, kubectl-sluice) into bin/.
	CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...

CONTAINER_TOOL ?= docker
IMAGE_REGISTRY ?= ghcr.io/sluice-dev
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/sluice/Chart.yaml)

# Every time in the images is the last commit's, so a commit gives the same digests.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)

.PHONY: images
images: ## Build the manager, loadtester, e2e test app and pause images as OCI archives with SBOMs into SLUICE_CACHE/images (no container engine).
	SLUICE_CACHE="$(SLUICE_CACHE)" IMAGE_TAG="$(IMAGE_TAG)" SOURCE_DATE_EPOCH="$(SOURCE_DATE_EPOCH)" hack/images.sh sluice

.PHONY: images-node
images-node: ## Build the CoreDNS, metrics-server and Traefik images of the e2e node from the binaries in the cache (missing ones are skipped).
	SLUICE_CACHE="$(SLUICE_CACHE)" SOURCE_DATE_EPOCH="$(SOURCE_DATE_EPOCH)" hack/images.sh node

.PHONY: docker-build
docker-build: ## Build the container images (needs a container engine; none runs on the CI machine).
	$(CONTAINER_TOOL) build -f build/manager.Dockerfile -t $(IMAGE_REGISTRY)/sluice-manager:$(IMAGE_TAG) .
	$(CONTAINER_TOOL) build -f build/loadtester.Dockerfile -t $(IMAGE_REGISTRY)/sluice-loadtester:$(IMAGE_TAG) .
	$(CONTAINER_TOOL) build -f build/kubectl-sluice.Dockerfile -t $(IMAGE_REGISTRY)/kubectl-sluice:$(IMAGE_TAG) .

##@ Tests

.PHONY: test
test: envtest prometheus metric-servers chromium vet ## Run every unit and envtest test against a real kube-apiserver, etcd, Prometheus, the other metrics servers and chromium.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test $(GO_TEST_FLAGS) ./...
	cd charts/sluice/test && go vet ./... && KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test $(GO_TEST_FLAGS) ./...
	cd hack/tools/images && go vet ./... && go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)
	$(MAKE) --no-print-directory bench-smoke

.PHONY: bench-smoke
bench-smoke: envtest ## Each benchmark once at its smallest size, so that none rots (part of make test; figures from it mean nothing).
	go test -run '^$$' -bench . -benchtime 1x ./controllers/rollout/statemachine/ ./pkg/analysis/judge/ ./pkg/loadtest/ ./pkg/traffic/
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench 'RolloutsAtScale/rollouts=10$$|StatusPatch|ScrapeRolloutState/rollouts=10$$' -benchtime 1x ./controllers/rollout/
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench 'ManagerHeapWithSecrets/secrets=200$$' -benchtime 1x ./internal/manager/

# FUZZTIME is how long `make fuzz` runs each fuzz target; `make test` runs
# each for TEST_FUZZTIME (their seed corpora run with the tests too), a count
# of inputs rather than a duration: when a duration ends while a worker is
# still on an input, `go test` fails the run with "context deadline
# exceeded" (it did once in CI on a loaded machine), and a count has no
# deadline.
FUZZTIME ?= 10s
TEST_FUZZTIME ?= 2000x
FUZZ_TARGETS := FuzzRender:./pkg/analysis/ FuzzCleanBody:./pkg/webhooks/ FuzzPayload:./pkg/webhooks/ \
	FuzzBuildRules:./pkg/traffic/gatewayapi/ FuzzBuildGRPCRules:./pkg/traffic/gatewayapi/ FuzzBuildHTTP:./pkg/traffic/istio/ FuzzDecide:./controllers/rollout/statemachine/ \
	FuzzJudge:./pkg/analysis/judge/ FuzzLookback:./pkg/analysis/promql/

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (a crasher lands in its testdata/fuzz as a seed and fails the run).
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "go test -run '^$$' -fuzz '^$${t%%:*}$$' -fuzztime $(FUZZTIME) $${t#*:}"; \
		go test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done

##@ Local cluster

.PHONY: e2e-tools
e2e-tools: ## Build the real-node cluster's binaries (controller-manager, scheduler, kubelet, kube-proxy, Traefik, CoreDNS, metrics-server, helm) from source into the cache and install containerd, runc and the CNI plugins from Debian (skipped when present).
	SLUICE_CACHE="$(SLUICE_CACHE)" hack/e2e-tools.sh cluster

.PHONY: e2e-tools-kwok
e2e-tools-kwok: ## Also build kwok, for the kwok control plane of `make bench-scale`.
	SLUICE_CACHE="$(SLUICE_CACHE)" hack/e2e-tools.sh all

# The real node runs what these build: the cluster's tools first (the node
# images are made from their binaries), then the images.
CLUSTER_DEPS := envtest prometheus e2e-tools images images-node

.PHONY: cluster
cluster: $(CLUSTER_DEPS) ## Start the local cluster with a real node and Sluice installed by its chart; Ctrl-C tears it down (needs root).
	SLUICE_CACHE="$(SLUICE_CACHE)" KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./e2e/up

.PHONY: e2e
e2e: $(CLUSTER_DEPS) ## End-to-end scenarios on the real node with real traffic (needs root).
	SLUICE_CACHE="$(SLUICE_CACHE)" KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -tags e2e -count=1 -v -parallel 3 -timeout 30m ./e2e/

.PHONY: demo
demo: $(CLUSTER_DEPS) ## Watch Sluice release a good and a bad version through real traffic on the real node (needs root; DEMO_KEEP=1 leaves it up).
	SLUICE_CACHE="$(SLUICE_CACHE)" KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./e2e/demo

.PHONY: bench
bench: envtest ## Benchmarks: a decision, N Rollouts on a real API server, the manager's heap with 2,000 Secrets, the load generator's rate.
	go test -run '^$$' -bench . -count 5 ./controllers/rollout/statemachine/
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench 'RolloutsAtScale/rollouts=(10|100|1000)$$' -benchtime 1x -count 3 -timeout 60m ./controllers/rollout/
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench 'StatusPatch|ScrapeRolloutState' -count 5 ./controllers/rollout/
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench 'ManagerHeapWithSecrets/secrets=2000$$' -benchtime 1x -count 3 -timeout 30m ./internal/manager/
	go test -run '^$$' -bench . -benchtime 3x -count 3 ./pkg/loadtest/

# BENCH_SCALE_FLAGS: see `go run ./e2e/bench -h` (fleet sizes, runs,
# strategies, the idle fleet). The kubernetes row is the floor: the same
# Deployment and Service writes with no manager running.
BENCH_SCALE_FLAGS ?= -n 1,100,1000 -runs 3 -strategies bluegreen,canary,kubernetes -idle 10000

.PHONY: bench-scale
bench-scale: envtest e2e-tools-kwok build ## The shipped bin/manager at fleet scale on the kwok control plane: N = 1, 100, 1,000 releases at once, the same Kubernetes work with no manager, and 10,000 idle Rollouts; prints one table (hours on two cores: the 10,000 idle alone take 80 minutes).
	SLUICE_CACHE="$(SLUICE_CACHE)" KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./e2e/bench -manager "$(CURDIR)/bin/manager" $(BENCH_SCALE_FLAGS)

.PHONY: bench-scale-smoke
bench-scale-smoke: ## `make bench-scale` once at its smallest (N = 1, one run of each strategy, 20 idle Rollouts), to check a change to the benchmark (7 minutes here; figures from it mean nothing).
	$(MAKE) --no-print-directory bench-scale BENCH_SCALE_FLAGS='-n 1 -runs 1 -strategies bluegreen,canary,kubernetes -idle 20 -unrelated 20 -idle-window 30s'

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd from source into the cache (skipped when present).
ifeq ($(origin KUBEBUILDER_ASSETS),environment)
	@for b in kube-apiserver etcd; do \
		if [ ! -x "$(KUBEBUILDER_ASSETS)/$$b" ]; then \
			echo "KUBEBUILDER_ASSETS=$(KUBEBUILDER_ASSETS) has no $$b: unset it to let 'make envtest' build one" >&2; exit 1; \
		fi; done
	@echo "using KUBEBUILDER_ASSETS=$(KUBEBUILDER_ASSETS)"
else
envtest: $(ENVTEST_DIR)/kube-apiserver $(ENVTEST_DIR)/etcd
	@echo "envtest binaries in $(ENVTEST_DIR)"
endif

.PHONY: prometheus
prometheus: ## Install Debian's prometheus for the analysis tests (skipped when present).
	hack/prometheus/install.sh

.PHONY: chromium
chromium: ## Install Debian's chromium for the dashboard's browser tests (skipped when present).
	hack/apt-install.sh chromium chromium

.PHONY: metric-servers
metric-servers: ## Install Debian's influxdb, graphite-carbon, graphite-web and victoria-metrics for the provider tests (each skipped when present).
	hack/apt-install.sh influxd influxdb
	hack/apt-install.sh carbon-cache graphite-carbon
	hack/apt-install.sh graphite-manage graphite-web
	hack/apt-install.sh victoria-metrics victoria-metrics

.PHONY: packages
packages: prometheus metric-servers chromium ## Install every Debian package the tests and the e2e node use, one after another (each skipped when present).
	hack/e2e-tools.sh packages >/dev/null

.PHONY: envtest-path
envtest-path: ## Print the envtest binary directory (for KUBEBUILDER_ASSETS).
	@echo $(ENVTEST_ASSETS)

$(ENVTEST_DIR)/kube-apiserver:
	@mkdir -p $(ENVTEST_DIR)
	@echo "building kube-apiserver $(K8S_VERSION) from source (first time only: several minutes)"
	cd hack/tools/k8s && CGO_ENABLED=0 go build -trimpath -ldflags '$(K8S_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver
	mv $@.tmp $@

$(ENVTEST_DIR)/etcd:
	@mkdir -p $(ENVTEST_DIR)
	@echo "building etcd $(ETCD_VERSION) from source (first time only)"
	cd hack/tools/etcd && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o $@.tmp .
	mv $@.tmp $@

$(CONTROLLER_GEN):
	@mkdir -p $(dir $@)
	cd hack/tools/controller-gen && go build -o $@.tmp sigs.k8s.io/controller-tools/cmd/controller-gen
	mv $@.tmp $@
