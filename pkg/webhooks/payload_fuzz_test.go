package webhooks

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// FuzzPayload: whatever names and metadata a Rollout author writes, a hook
// call sends one valid JSON body that decodes to what was written (for
// valid UTF-8) and an Idempotency-Key header of 32 hex digits: no user
// string reaches a header or breaks the body.
func FuzzPayload(f *testing.F) {
	f.Add("podinfo", "shop", "approval", "team", "payments")
	f.Add("", "", "", "", "")
	f.Add("a\"b", "ns\n", "hook\r\nX-Evil: 1", "k\x00", "\xff\xfe")
	var got struct {
		body []byte
		key  string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.body, _ = io.ReadAll(r.Body)
		got.key = r.Header.Get(IdempotencyHeader)
	}))
	f.Cleanup(srv.Close)
	c := &Client{HTTP: srv.Client()}
	f.Fuzz(func(t *testing.T, name, namespace, hook, key, value string) {
		state := CallState{UID: "u", Revision: "r1", Phase: sluicev1.PhaseProgressing}
		p := Payload{Name: name, Namespace: namespace, Checksum: "r1", IdempotencyKey: state.Key(sluicev1.HookRollout, hook)}
		h := sluicev1.Webhook{Name: hook, Type: sluicev1.HookRollout, URL: srv.URL, Metadata: map[string]string{key: value}}
		if err := c.Call(context.Background(), h, p); err != nil {
			t.Fatalf("call: %v", err)
		}
		if !json.Valid(got.body) {
			t.Fatalf("body is not JSON: %q", got.body)
		}
		if b, err := hex.DecodeString(got.key); err != nil || len(b) != 16 {
			t.Errorf("Idempotency-Key %q, want 32 hex digits", got.key)
		}
		var back Payload
		if err := json.Unmarshal(got.body, &back); err != nil {
			t.Fatal(err)
		}
		// Each on its own: two invalid halves can join into a valid rune.
		valid := utf8.ValidString(name) && utf8.ValidString(namespace) && utf8.ValidString(key) && utf8.ValidString(value)
		if valid && (back.Name != name || back.Namespace != namespace || back.Metadata[key] != value) {
			t.Errorf("the body says %+v, the Rollout %q/%q %q=%q", back, namespace, name, key, value)
		}
	})
}
