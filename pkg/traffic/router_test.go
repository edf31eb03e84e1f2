package traffic

import (
	"maps"
	"testing"
)

func TestTheShiftingLabelIsOnExactlyWhileARouteIsAwayFromRest(t *testing.T) {
	on := map[string]string{"team": "shop", ShiftingLabel: "true"}
	off := map[string]string{"team": "shop"}
	tests := []struct {
		name        string
		have        map[string]string
		route       Route
		want        map[string]string
		wantChanged bool
	}{
		{"at rest, unlabelled", off, Route{Weights: ForCanary(0)}, off, false},
		{"a weight on the canary", off, Route{Weights: ForCanary(20)}, on, true},
		{"an experiment at weight 0", off, Route{Weights: ForCanary(0), Experiment: true}, on, true},
		{"still shifting", on, Route{Weights: ForCanary(60)}, on, false},
		{"back at rest", on, Route{Weights: ForCanary(0)}, off, true},
		{"no labels at all, shifting", nil, Route{Weights: ForCanary(5)}, map[string]string{ShiftingLabel: "true"}, true},
		{"a value someone else changed", map[string]string{ShiftingLabel: "no"}, Route{Weights: ForCanary(5)}, map[string]string{ShiftingLabel: "true"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.have)
			got, changed := SyncShiftingLabel(tt.have, tt.route)
			if !maps.Equal(got, tt.want) || changed != tt.wantChanged {
				t.Errorf("labels %v, changed %v; want %v, %v", got, changed, tt.want, tt.wantChanged)
			}
			if !maps.Equal(tt.have, before) {
				t.Errorf("the input labels were modified: %v", tt.have)
			}
		})
	}
}
