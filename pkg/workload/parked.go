package workload

import corev1 "k8s.io/api/core/v1"

// A workload kind without a replica count (a DaemonSet runs one pod on each
// node it selects) is parked, between releases, by requiring a node label
// that no node carries: its pods then fit no node and its controller runs
// none. The requirement is one key added to the pod template's nodeSelector,
// which is ANDed with the rest of the user's nodeSelector and node affinity,
// so removing the key gives back exactly the template the user wrote.
const (
	// ParkedNodeLabel is the node label a parked workload's pods require.
	// No node may carry it (docs/how-it-works.md#daemonsets).
	ParkedNodeLabel = "sluice.dev/parked"
	// ParkedNodeValue is the value they require.
	ParkedNodeValue = "true"
)

// IsParked reports whether a pod spec requires the parking label.
func IsParked(spec *corev1.PodSpec) bool {
	_, ok := spec.NodeSelector[ParkedNodeLabel]
	return ok
}

// Park adds the parking requirement to a pod spec.
func Park(spec *corev1.PodSpec) {
	if spec.NodeSelector == nil {
		spec.NodeSelector = map[string]string{}
	}
	spec.NodeSelector[ParkedNodeLabel] = ParkedNodeValue
}

// Unpark removes the parking requirement from a pod spec, and the
// nodeSelector with it when it held nothing else (as the user wrote it: an
// empty nodeSelector is not serialised).
func Unpark(spec *corev1.PodSpec) {
	delete(spec.NodeSelector, ParkedNodeLabel)
	if len(spec.NodeSelector) == 0 {
		spec.NodeSelector = nil
	}
}
