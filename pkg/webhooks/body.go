package webhooks

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRead is how much of a failing response body is read to find maxBody
// bytes of text in it (control characters and invalid bytes are dropped).
const maxRead = 4 << 10

// cleanBody is the text of a failing webhook's body as it may go into a
// Rollout's status and events, which a webhook does not own: printable
// UTF-8 only (whitespace, newlines and tabs become one space; other control
// and format characters and invalid bytes are dropped), trimmed, and at most
// maxBody bytes cut on a rune boundary, followed by "…" when anything was
// cut. more says the body went on past raw.
func cleanBody(raw []byte, more bool) string {
	var b strings.Builder
	space := false
	for len(raw) > 0 {
		r, size := utf8.DecodeRune(raw)
		raw = raw[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case !unicode.IsPrint(r):
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > maxBody {
			more = true
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if more && b.Len() > 0 {
		b.WriteString("…")
	}
	return b.String()
}
