package webhooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// failWith calls a webhook that answers 500 with body and returns the error text.
func failWith(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	err := (&Client{}).Call(context.Background(), sluicev1.Webhook{Name: "gate", URL: srv.URL}, Payload{})
	if err == nil {
		t.Fatal("Call = nil, want an error")
	}
	return err.Error()
}

// assertClean fails unless msg is valid UTF-8 without control characters.
func assertClean(t *testing.T, msg string) {
	t.Helper()
	if !utf8.ValidString(msg) {
		t.Errorf("%q is not valid UTF-8", msg)
	}
	for _, r := range msg {
		if unicode.IsControl(r) || r == utf8.RuneError {
			t.Errorf("%q holds the control character %U", msg, r)
		}
	}
}

func TestAFailingWebhooksBodyReachesStatusAndEventsClean(t *testing.T) {
	body := "\x1b[31mdenied\x1b[0m:\x00 by\r\n\tpolicy  \x07 ok\x7f \u0085end"
	msg := failWith(t, body)
	want := "500 Internal Server Error: [31mdenied[0m: by policy ok end"
	if msg != want {
		t.Errorf("error = %q, want %q", msg, want)
	}
	assertClean(t, msg)
}

func TestALongBodyIsCutOnARuneBoundary(t *testing.T) {
	// 255 bytes, then a 3-byte rune across the 256-byte cut.
	body := strings.Repeat("a", 255) + "€€€" + strings.Repeat("z", 100)
	msg := failWith(t, body)
	text := strings.TrimPrefix(msg, "500 Internal Server Error: ")
	assertClean(t, msg)
	if !strings.HasSuffix(text, "…") || len(strings.TrimSuffix(text, "…")) > maxBody {
		t.Errorf("body = %q (%d bytes), want at most %d bytes and …", text, len(text), maxBody)
	}
	if strings.TrimSuffix(text, "…") != strings.Repeat("a", 255) {
		t.Errorf("body = %q, want the 255 a's before the cut rune", text)
	}
}

func TestABodyOfInvalidUTF8AndControlsOnlyIsDropped(t *testing.T) {
	msg := failWith(t, "\xff\xfe\x00\x01\n\t ")
	if msg != "500 Internal Server Error" {
		t.Errorf("error = %q, want the status alone", msg)
	}
}
