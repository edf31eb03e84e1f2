// Package cliflag holds what the binaries' flag parsing shares.
package cliflag

import "strings"

// SplitList splits a comma-separated flag value, trimming each entry and
// dropping empty ones ("a, ,b" is [a b]).
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
