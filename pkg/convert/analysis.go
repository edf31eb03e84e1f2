package convert

import (
	"slices"
	"time"

	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// analysis maps spec.analysis (or the older spec.canaryAnalysis): the
// strategy, the hold and threshold, metrics, webhooks and alerts.
func (c *canaryConv) analysis() {
	a := c.spec.obj("analysis")
	if a == nil && c.spec.has("canaryAnalysis") {
		a = c.spec.obj("canaryAnalysis")
		c.spec.t.notes = append(c.spec.t.notes, Note{Field: "spec.canaryAnalysis", Kind: Changed,
			Reason: "Flagger's deprecated name of spec.analysis: read as analysis"})
	}
	if a == nil {
		a = &reader{t: c.spec.t, prefix: "spec.analysis", m: map[string]any{}}
		c.spec.note("analysis", Differs, "no analysis: converted as blue/green with one iteration and Sluice's defaults (interval 1m, threshold 5)")
	}
	c.strategy(a)
	an := &sluicev1.Analysis{}
	if d := duration(a, "interval"); d != nil {
		if d.Duration < time.Second {
			a.note("interval", Changed, "raised to 1s, the shortest interval Sluice accepts")
			d.Duration = time.Second
		}
		an.Interval = d
	}
	if n, ok := a.int("threshold"); ok {
		an.Threshold = int32(max(n, 1))
		if n < 1 {
			a.note("threshold", Changed, "raised to 1: it is the number of failed checks that rolls back")
		}
	} else if len(a.m) > 0 {
		// Flagger rolls back at the first failed check when no threshold
		// is set; Sluice's default is 5. Written out, so the release
		// behaves as it did.
		an.Threshold = 1
		a.note("threshold", Changed, "not set: Flagger's default of 1 failed check written out (Sluice's default is 5)")
	}
	for _, f := range []struct {
		key string
		dst **int32
	}{{"primaryReadyThreshold", &c.ro.Spec.PrimaryReadyThreshold}, {"canaryReadyThreshold", &c.ro.Spec.CanaryReadyThreshold}} {
		k, dst := f.key, f.dst
		n, ok := a.int(k)
		switch {
		case !ok || n == 100:
		case n < 1 || n > 100:
			a.note(k, NotCarried, "%d is not a percentage from 1 to 100", n)
		default:
			*dst = ptr.To(int32(n))
			a.note(k, Differs, "moved to spec.%s; as in Flagger, every replica must run the new version and %d%% must be available, but a side takes all traffic only with as many available replicas as the other serves with", k, n)
		}
	}
	an.Metrics = c.metrics(a)
	an.Webhooks = c.webhooks(a)
	an.Alerts = c.alerts(a)
	c.ro.Spec.Analysis = an
}

// strategy chooses the Sluice strategy as Flagger does: request matches
// make A/B testing, iterations make blue/green, weights make a canary.
func (c *canaryConv) strategy(a *reader) {
	s := &c.ro.Spec.Strategy
	iterations, hasIterations := a.int("iterations")
	hasWeights := a.has("stepWeight") || a.has("stepWeights")
	if c.tcp {
		for _, k := range []string{"match", "sessionAffinity", "mirror", "mirrorWeight"} {
			if a.has(k) {
				a.note(k, NotCarried, "acts on HTTP requests, and the port is TCP: Flagger ignores it for a TCP service, and the Rollout refuses it")
			}
		}
	}
	switch {
	case a.has("match") && c.router.weighted() && !c.tcp:
		s.ABTesting = &sluicev1.ABTestingStrategy{Iterations: iterationCount(a, iterations, hasIterations), Match: c.matches(a, "match")}
		if len(s.ABTesting.Match) == 0 {
			a.note("match", Changed, "no request match is left: converted as blue/green")
			s.ABTesting = nil
			s.BlueGreen = &sluicev1.BlueGreenStrategy{Iterations: iterationCount(a, iterations, hasIterations)}
		}
	case hasIterations && iterations > 0, !hasWeights:
		if hasWeights {
			a.note("iterations", Differs, "with iterations Flagger runs blue/green and ignores the weights: so does the Rollout")
		} else if !hasIterations && a.has("interval") {
			a.note("iterations", Differs, "no stepWeight, stepWeights or iterations: converted as blue/green with one iteration")
		}
		s.BlueGreen = &sluicev1.BlueGreenStrategy{Iterations: iterationCount(a, iterations, hasIterations)}
	case !c.router.weighted():
		s.BlueGreen = &sluicev1.BlueGreenStrategy{Iterations: int32(len(c.weights(a)))}
		a.note("stepWeight", Changed, "the kubernetes router cannot split traffic: converted as blue/green with one iteration per step")
	default:
		s.Canary = c.canary(a)
	}
	if a.has("match") && s.ABTesting == nil && !a.t.covered(a.path("match")) {
		a.note("match", NotCarried, "A/B testing needs routing.gatewayAPI or routing.istio")
	}
	if s.Canary == nil {
		for _, k := range []string{"stepWeight", "stepWeights", "maxWeight", "sessionAffinity"} {
			if a.has(k) && !a.t.covered(a.path(k)) {
				a.note(k, NotCarried, "goes with a weighted canary; this Canary converts to %s", strategyName(s))
			}
		}
	}
	c.mirror(a)
	if n, ok := a.int("stepWeightPromotion"); ok {
		switch {
		case s.Canary == nil:
			a.note("stepWeightPromotion", NotCarried, "goes with a weighted canary; this Canary converts to %s", strategyName(s))
		case n < 1 || n > 100:
			a.note("stepWeightPromotion", NotCarried, "%d is not a percentage from 1 to 100", n)
		default:
			s.Canary.StepWeightPromotion = ptr.To(int32(n))
			a.note("stepWeightPromotion", Differs, "Sluice first moves all traffic to the canary, then gives the primary the new version; once it is ready, traffic moves back to it in these steps, one per interval")
		}
	}
}

// iterationCount is Flagger's iterations, at least 1 and at most 1000.
func iterationCount(a *reader, n int64, ok bool) int32 {
	switch {
	case !ok:
		return 1
	case n < 1:
		a.note("iterations", Changed, "raised to 1")
		return 1
	case n > 1000:
		a.note("iterations", Changed, "lowered to 1000, the most Sluice accepts")
		return 1000
	}
	return int32(n)
}

// canary maps weights and session affinity to a canary strategy.
func (c *canaryConv) canary(a *reader) *sluicev1.CanaryStrategy {
	cs := &sluicev1.CanaryStrategy{}
	if a.has("stepWeights") {
		cs.StepWeights = c.weights(a)
		if a.has("stepWeight") {
			a.note("stepWeight", NotCarried, "Flagger uses stepWeights when both are set")
		}
		if a.has("maxWeight") {
			a.note("maxWeight", NotCarried, "with stepWeights the last of them is the last weight")
		}
	} else {
		step, _ := a.int("stepWeight")
		step = min(max(step, 1), 100)
		cs.StepWeight = ptr.To(int32(step))
		if m, ok := a.int("maxWeight"); ok {
			cs.MaxWeight = ptr.To(int32(min(max(m, step), 100)))
			if int64(*cs.MaxWeight) != m {
				a.note("maxWeight", Changed, "became %d: between stepWeight and 100", *cs.MaxWeight)
			}
		}
	}
	if sa := a.obj("sessionAffinity"); sa != nil && !c.tcp {
		cs.SessionAffinity = &sluicev1.SessionAffinity{}
		cs.SessionAffinity.CookieName, _ = sa.str("cookieName")
		if n, ok := sa.int("maxAge"); ok {
			cs.SessionAffinity.MaxAge = int32(max(n, 1))
		}
		// Flagger pins the canary's users only, unless primaryCookieName
		// asks it to pin the primary's too: keep that behaviour.
		cs.SessionAffinity.Pin = sluicev1.PinCanaryOnly
		if sa.has("primaryCookieName") {
			cs.SessionAffinity.Pin = sluicev1.PinBoth
			sa.note("primaryCookieName", Differs, "pin: Both keeps the primary's users on the primary as Flagger does, but with one cookie for both versions (cookieName, valued <revision>-primary or -canary) rather than a second cookie")
		}
	}
	return cs
}

// weights reads stepWeights (or stepWeight up to maxWeight) as a list of
// increasing weights from 1 to 100.
func (c *canaryConv) weights(a *reader) []int32 {
	var out []int32
	if items, ok := a.get("stepWeights"); ok {
		list, _ := items.([]any)
		for _, v := range list {
			if f, ok := v.(int64); ok {
				out = append(out, int32(min(max(f, 1), 100)))
			} else if f, ok := v.(float64); ok {
				out = append(out, int32(min(max(f, 1), 100)))
			}
		}
		sorted := slices.Clone(out)
		slices.Sort(sorted)
		sorted = slices.Compact(sorted)
		if !slices.Equal(sorted, out) || len(out) != len(list) {
			a.note("stepWeights", Changed, "became %v: Sluice's weights are numbers from 1 to 100 that increase", sorted)
		}
		return sorted
	}
	step, _ := a.int("stepWeight")
	step = min(max(step, 1), 100)
	maxW := int64(100)
	if m, ok := a.int("maxWeight"); ok {
		maxW = min(max(m, step), 100)
	}
	for w := step; w <= maxW; w += step {
		out = append(out, int32(w))
	}
	return out
}

// mirror maps mirroring, which Sluice does in blue/green only.
func (c *canaryConv) mirror(a *reader) {
	on, _ := a.bool("mirror")
	weight, hasWeight := a.int("mirrorWeight")
	bg := c.ro.Spec.Strategy.BlueGreen
	switch {
	case c.tcp:
	case !on && hasWeight:
		a.note("mirrorWeight", NotCarried, "goes with mirror: true")
	case !on:
	case bg == nil:
		a.note("mirror", NotCarried, "Sluice mirrors traffic in blue/green (iterations) only")
	case !c.router.weighted():
		a.note("mirror", NotCarried, "mirroring needs routing.gatewayAPI or routing.istio")
	default:
		bg.Mirror = true
		if hasWeight {
			bg.MirrorPercent = ptr.To(int32(min(max(weight, 1), 100)))
		}
	}
}

// strategyName names the strategy chosen, for notes.
func strategyName(s *sluicev1.Strategy) string {
	switch {
	case s.ABTesting != nil:
		return "A/B testing"
	case s.BlueGreen != nil:
		return "blue/green"
	}
	return "a canary"
}
