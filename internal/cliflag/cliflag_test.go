package cliflag

import (
	"slices"
	"testing"
)

func TestSplitListTrimsAndDropsEmptyEntries(t *testing.T) {
	for in, want := range map[string][]string{
		"":            nil,
		"a":           {"a"},
		" a, ,b ,":    {"a", "b"},
		"10.0.0.0/8,": {"10.0.0.0/8"},
	} {
		if got := SplitList(in); !slices.Equal(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}
