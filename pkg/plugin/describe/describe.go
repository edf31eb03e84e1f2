// Package describe holds what the plugin's views (the terminal's `get` and
// the dashboard) say alike about a Rollout: its strategy's name, which
// webhooks are gates, and when an event happened.
package describe

import (
	"fmt"
	"time"

	eventsv1 "k8s.io/api/events/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// StrategyName names a Rollout's strategy in words.
func StrategyName(spec *sluicev1.RolloutSpec) string {
	switch {
	case spec.Strategy.Canary != nil && spec.Strategy.Canary.ScaleWithWeight && spec.Strategy.Canary.MinReplicas != nil:
		n := *spec.Strategy.Canary.MinReplicas
		if n == 1 {
			return "canary, sized by its weight, at least 1 replica"
		}
		return fmt.Sprintf("canary, sized by its weight, at least %d replicas", n)
	case spec.Strategy.Canary != nil && spec.Strategy.Canary.ScaleWithWeight:
		return "canary, sized by its weight"
	case spec.Strategy.Canary != nil:
		return "canary"
	case spec.Strategy.BlueGreen != nil && spec.Strategy.BlueGreen.Mirror:
		return "blue/green with mirroring"
	case spec.Strategy.BlueGreen != nil:
		return "blue/green"
	case spec.Strategy.ABTesting != nil:
		return "A/B testing"
	}
	return "-"
}

// IsGate reports whether a webhook type can hold a release.
func IsGate(t sluicev1.HookType) bool {
	switch t {
	case sluicev1.HookConfirmRollout, sluicev1.HookConfirmTrafficIncrease, sluicev1.HookConfirmPromotion:
		return true
	}
	return false
}

// EventTime is when an event last happened.
func EventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// MinRequestsRule says how many requests a check needs to be judged:
// "on 100+ requests"; empty without minRequests.
func MinRequestsRule(n *int64) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("on %d+ requests", *n)
}

// CompareRule says how much worse than the primary a compare check lets the
// canary be: "<= +10% vs primary" (higher is worse), ">= -1% vs primary"
// (lower is worse) or "within ±5% of primary"; empty without compare.
func CompareRule(c *sluicev1.Compare) string {
	if c == nil {
		return ""
	}
	tol := c.Tolerance
	if tol == "" {
		tol = "10%"
	}
	switch c.Direction {
	case sluicev1.CompareIncrease:
		return "<= +" + tol + " vs primary"
	case sluicev1.CompareDecrease:
		return ">= -" + tol + " vs primary"
	default:
		return "within ±" + tol + " of primary"
	}
}
