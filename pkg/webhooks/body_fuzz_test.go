package webhooks

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCleanBody holds for any body: the text is valid UTF-8 without control
// characters or runs of spaces (a U+FFFD the body sent is valid text), and at most maxBody bytes before its "…".
func FuzzCleanBody(f *testing.F) {
	f.Add([]byte("gate closed"), false)
	f.Add([]byte("\x1b[31mdenied\x1b[0m\x00\r\n\t \u0085\u202e"), false)
	f.Add([]byte(strings.Repeat("a", 255)+"€€"), true)
	f.Add([]byte("\xff\xfe\xc3"), true)
	f.Fuzz(func(t *testing.T, raw []byte, more bool) {
		got := cleanBody(raw, more)
		if !utf8.ValidString(got) {
			t.Fatalf("cleanBody(%q) = %q, not valid UTF-8", raw, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Fatalf("cleanBody(%q) = %q holds %U", raw, got, r)
			}
		}
		text := strings.TrimSuffix(got, "…")
		if len(text) > maxBody || strings.Contains(text, "  ") || strings.TrimSpace(text) != text {
			t.Fatalf("cleanBody(%q) = %q: over %d bytes or untrimmed spaces", raw, got, maxBody)
		}
	})
}
