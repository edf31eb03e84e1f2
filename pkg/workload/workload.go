// Package workload is the seam between the Rollout reconciler and the
// workloads it releases, as pkg/traffic is for routers and pkg/autoscaling
// for autoscalers. One small interface, Kind, with one package per kind:
// deployment (apps/v1 Deployment) and daemonset (apps/v1 DaemonSet, parked
// on no node between releases: parked.go).
//
// What does not depend on the kind lives here, as pure functions over pod
// specs and object metadata: the names and annotations of the primary, the
// ConfigMaps and Secrets a pod template uses and their -primary copies, the
// revision of a release, the relabelling of pod selectors for the primary's
// pods, the primary's PodDisruptionBudget copies, and the stable template
// kept for an abort during a promotion. The reconciler reads and writes
// workloads through its own client: observe only reads, act only writes.
package workload

// PrimarySuffix names the primary's workload, Service and config copies.
const PrimarySuffix = "-primary"

// RolloutLabel on Sluice's objects names the Rollout they belong to.
const RolloutLabel = "sluice.dev/rollout"

// RevisionAnnotation on the primary records the revision it runs.
const RevisionAnnotation = "sluice.dev/revision"

// PrimaryName names the primary's copy of an object (or a selector value).
func PrimaryName(name string) string { return name + PrimarySuffix }

// Primary is what a primary is built for from its target.
type Primary struct {
	// Selector is the primary's pod selector (see the kind's Selectors).
	Selector map[string]string
	// Copied maps the ConfigRef keys of the ConfigMaps and Secrets that
	// have a copy of the primary's to the copy's name (CopyNames).
	Copied map[string]string
	// Revision is the revision the primary runs.
	Revision string
	// Replicas is how many pods it runs.
	Replicas int32
}
