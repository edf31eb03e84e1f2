// Nested module that pins KEDA. The tests install the ScaledObject CRD that
// ships in KEDA's module (config/crd/bases) into envtest; it lives apart
// from the root module so that KEDA never enters Sluice's dependency graph.
module github.com/sluice-dev/sluice/hack/tools/keda

go 1.26.0

require github.com/kedacore/keda/v2 v2.21.0
