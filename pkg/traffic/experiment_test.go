package traffic

import (
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestSetCookieCarriesTheAttributesTheSpecAsksFor(t *testing.T) {
	tests := []struct {
		name string
		aff  sluicev1.SessionAffinity
		want string
	}{
		{"defaults only", sluicev1.SessionAffinity{},
			"sluice-affinity=r2-canary; Max-Age=86400; Path=/"},
		{"every attribute", sluicev1.SessionAffinity{CookieName: "v", MaxAge: 60, Path: "/shop", Domain: ".example.com", Secure: true, SameSite: "None"},
			"v=r2-canary; Max-Age=60; Path=/shop; Domain=.example.com; Secure; SameSite=None"},
		{"SameSite without Secure", sluicev1.SessionAffinity{CookieName: "v", MaxAge: 60, SameSite: "Lax"},
			"v=r2-canary; Max-Age=60; Path=/; SameSite=Lax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{SessionAffinity: &tt.aff}}}
			a := Affinity(spec, Route{Experiment: true, Revision: "r2"})
			if got := SetCookie(a, "r2", "canary"); got != tt.want {
				t.Errorf("Set-Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAffinityPinsBothVersionsUnlessToldCanaryOnly(t *testing.T) {
	spec := func(pin sluicev1.AffinityPin) *sluicev1.RolloutSpec {
		return &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{
			SessionAffinity: &sluicev1.SessionAffinity{Pin: pin}}}}
	}
	run := Route{Experiment: true, Revision: "r2"}
	if a := Affinity(spec(""), run); !PinsPrimary(a) {
		t.Error("an unset pin does not pin the primary's users; want Both")
	}
	if a := Affinity(spec(sluicev1.PinBoth), run); !PinsPrimary(a) {
		t.Error("pin Both does not pin the primary's users")
	}
	if a := Affinity(spec(sluicev1.PinCanaryOnly), run); PinsPrimary(a) {
		t.Error("pin CanaryOnly pins the primary's users")
	}
}
