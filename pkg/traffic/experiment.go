package traffic

import (
	"fmt"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Defaults of a session affinity left unset in a spec built in code (the
// API server defaults them on apply).
const (
	DefaultAffinityCookie = "sluice-affinity"
	DefaultAffinityMaxAge = 86400
)

// Affinity returns the session affinity a Route must carry (with its
// defaults filled in), or nil when there is none.
func Affinity(spec *sluicev1.RolloutSpec, r Route) *sluicev1.SessionAffinity {
	if !r.Experiment || spec.Strategy.Canary == nil || spec.Strategy.Canary.SessionAffinity == nil {
		return nil
	}
	a := *spec.Strategy.Canary.SessionAffinity
	if a.CookieName == "" {
		a.CookieName = DefaultAffinityCookie
	}
	if a.MaxAge == 0 {
		a.MaxAge = DefaultAffinityMaxAge
	}
	return &a
}

// AffinityValue is the cookie value that pins a user to a version
// ("primary" or "canary") of a revision's run.
func AffinityValue(revision, version string) string { return revision + "-" + version }

// SetCookie is the Set-Cookie header value a version's answers carry.
func SetCookie(a *sluicev1.SessionAffinity, revision, version string) string {
	return fmt.Sprintf("%s=%s; Max-Age=%d; Path=/", a.CookieName, AffinityValue(revision, version), a.MaxAge)
}

// Mirror returns the share of requests to copy to the canary while the Route
// is an experiment of a mirroring blue/green strategy.
func Mirror(spec *sluicev1.RolloutSpec, r Route) (int32, bool) {
	bg := spec.Strategy.BlueGreen
	if !r.Experiment || bg == nil || !bg.Mirror {
		return 0, false
	}
	if bg.MirrorPercent != nil {
		return *bg.MirrorPercent, true
	}
	return 100, true
}
