package statemachine

import (
	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// hasExperiment reports whether the strategy adds request rules to the
// route while a run is under way: A/B matches, mirroring, session affinity.
func hasExperiment(spec *sluicev1.RolloutSpec) bool {
	s := spec.Strategy
	return s.ABTesting != nil ||
		(s.BlueGreen != nil && s.BlueGreen.Mirror) ||
		(s.Canary != nil && s.Canary.SessionAffinity != nil)
}

// hasHook reports whether the spec declares a webhook of the given type.
func hasHook(spec *sluicev1.RolloutSpec, t sluicev1.HookType) bool {
	if spec.Analysis == nil {
		return false
	}
	for _, h := range spec.Analysis.Webhooks {
		if h.Type == t {
			return true
		}
	}
	return false
}
