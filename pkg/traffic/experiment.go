package traffic

import (
	"fmt"
	"strings"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Defaults of a session affinity left unset in a spec built in code (the
// API server defaults them on apply).
const (
	DefaultAffinityCookie = "sluice-affinity"
	DefaultAffinityMaxAge = 86400
	DefaultAffinityPath   = "/"
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
	if a.Path == "" {
		a.Path = DefaultAffinityPath
	}
	if a.Pin == "" {
		a.Pin = sluicev1.PinBoth
	}
	return &a
}

// PinsPrimary reports whether an affinity keeps the primary's users on the
// primary too (pin Both), rather than only the canary's (pin CanaryOnly).
func PinsPrimary(a *sluicev1.SessionAffinity) bool { return a.Pin != sluicev1.PinCanaryOnly }

// AffinityValue is the cookie value that pins a user to a version
// ("primary" or "canary") of a revision's run.
func AffinityValue(revision, version string) string { return revision + "-" + version }

// SetCookie is the Set-Cookie header value a version's answers carry, with
// the attributes the affinity asks for (a defaulted one, from Affinity).
// The API server's patterns keep every attribute free of ';' and spaces.
func SetCookie(a *sluicev1.SessionAffinity, revision, version string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s; Max-Age=%d; Path=%s", a.CookieName, AffinityValue(revision, version), a.MaxAge, a.Path)
	if a.Domain != "" {
		b.WriteString("; Domain=" + a.Domain)
	}
	if a.Secure {
		b.WriteString("; Secure")
	}
	if a.SameSite != "" {
		b.WriteString("; SameSite=" + a.SameSite)
	}
	return b.String()
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
