package dashboard

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// asked records the actions a test server was asked for.
type asked struct {
	ns, name string
	action   sluicev1.Action
}

// testServer is a dashboard on 127.0.0.1:3100 whose actions answer with
// err, recording what they were asked.
func testServer(t *testing.T, namespace string, err error) (*Server, *[]asked) {
	t.Helper()
	var got []asked
	s, e := New(Options{Namespace: namespace, User: "alice", Ask: func(_ context.Context, ns, name string, a sluicev1.Action) (string, error) {
		got = append(got, asked{ns, name, a})
		return "alice", err
	}}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3100})
	if e != nil {
		t.Fatal(e)
	}
	return s, &got
}

// do sends a request to the server's handler with the given headers.
func do(s *Server, method, path string, headers map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.Host = "127.0.0.1:3100"
	for k, v := range headers {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct{ Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer is not JSON: %q", w.Body.String())
	}
	return body.Error
}

func TestThePageIsServedOnlyToItsOwnHostNames(t *testing.T) {
	s, _ := testServer(t, "", nil)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:3100", http.StatusOK},
		{"localhost:3100", http.StatusOK},
		{"[::1]:3100", http.StatusOK},
		// DNS rebinding: a name the attacker controls, resolving to us.
		{"evil.example:3100", http.StatusMisdirectedRequest},
		{"localhost:3101", http.StatusMisdirectedRequest},
		{"localhost", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	} {
		t.Run(tc.host, func(t *testing.T) {
			w := do(s, "GET", "/", map[string]string{"Host": tc.host})
			if w.Code != tc.want {
				t.Errorf("GET / with Host %q: %d, want %d", tc.host, w.Code, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(w.Body.String(), s.token) {
				t.Errorf("the page does not carry the CSRF token")
			}
		})
	}
}

func TestTheStreamIsRefusedToAForeignHost(t *testing.T) {
	s, _ := testServer(t, "", nil)
	w := do(s, "GET", "/api/stream", map[string]string{"Host": "rebound.example:3100"})
	if w.Code != http.StatusMisdirectedRequest || !strings.Contains(errorOf(t, w), `host "rebound.example:3100"`) {
		t.Errorf("stream for a foreign host: %d %q", w.Code, w.Body.String())
	}
}

func TestRequestsFromAnotherOriginAreRefused(t *testing.T) {
	s, asks := testServer(t, "", nil)
	for _, origin := range []string{"http://evil.example", "https://127.0.0.1:3100", "null", "http://127.0.0.1:3101"} {
		t.Run(origin, func(t *testing.T) {
			w := do(s, "POST", "/api/rollouts/test/podinfo/actions/abort", map[string]string{"Origin": origin, CSRFHeader: s.token})
			if w.Code != http.StatusForbidden || !strings.Contains(errorOf(t, w), "origin") {
				t.Errorf("POST from origin %q: %d %q", origin, w.Code, w.Body.String())
			}
			w = do(s, "GET", "/api/stream", map[string]string{"Origin": origin})
			if w.Code != http.StatusForbidden {
				t.Errorf("stream from origin %q: %d", origin, w.Code)
			}
		})
	}
	if len(*asks) != 0 {
		t.Errorf("actions were asked for: %v", *asks)
	}
}

func TestAnActionNeedsTheCSRFToken(t *testing.T) {
	s, asks := testServer(t, "", nil)
	for name, headers := range map[string]map[string]string{
		"no token":    {"Origin": "http://127.0.0.1:3100"},
		"wrong token": {"Origin": "http://127.0.0.1:3100", CSRFHeader: strings.Repeat("0", len(s.token))},
		"no origin":   {CSRFHeader: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			w := do(s, "POST", "/api/rollouts/test/podinfo/actions/abort", headers)
			if w.Code != http.StatusForbidden || !strings.Contains(errorOf(t, w), "CSRF token") {
				t.Errorf("%d %q", w.Code, w.Body.String())
			}
		})
	}
	if len(*asks) != 0 {
		t.Fatalf("actions were asked for: %v", *asks)
	}
	w := do(s, "POST", "/api/rollouts/test/podinfo/actions/promote-full", map[string]string{"Origin": "http://localhost:3100", CSRFHeader: s.token})
	if w.Code != http.StatusOK {
		t.Fatalf("with the token: %d %q", w.Code, w.Body.String())
	}
	if want := (asked{"test", "podinfo", sluicev1.ActionPromoteFull}); len(*asks) != 1 || (*asks)[0] != want {
		t.Errorf("asked %v, want %v", *asks, want)
	}
}

func TestTokensDifferBetweenProcesses(t *testing.T) {
	a, _ := testServer(t, "", nil)
	b, _ := testServer(t, "", nil)
	if a.token == b.token || len(a.token) < 32 {
		t.Errorf("tokens %q and %q", a.token, b.token)
	}
}

func TestTheAPIServersRefusalIsPassedOnVerbatim(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "sluice.dev", Resource: "rollouts"}, "podinfo",
		errFor(`User "bob" cannot patch resource "rollouts" in API group "sluice.dev" in the namespace "test"`))
	s, _ := testServer(t, "", forbidden)
	w := do(s, "POST", "/api/rollouts/test/podinfo/actions/pause", map[string]string{CSRFHeader: s.token})
	if w.Code != http.StatusForbidden {
		t.Errorf("status %d, want 403", w.Code)
	}
	if got := errorOf(t, w); got != forbidden.Error() {
		t.Errorf("error %q, want the API server's %q", got, forbidden.Error())
	}
}

func TestUnknownActionsAndNamespacesOutOfScopeAreRefused(t *testing.T) {
	s, asks := testServer(t, "test", nil)
	if w := do(s, "POST", "/api/rollouts/test/podinfo/actions/delete", map[string]string{CSRFHeader: s.token}); w.Code != http.StatusBadRequest {
		t.Errorf("unknown action: %d", w.Code)
	}
	if w := do(s, "POST", "/api/rollouts/other/podinfo/actions/pause", map[string]string{CSRFHeader: s.token}); w.Code != http.StatusForbidden {
		t.Errorf("other namespace: %d", w.Code)
	}
	if w := do(s, "GET", "/api/rollouts/test/podinfo/actions/pause", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET of an action: %d", w.Code)
	}
	if len(*asks) != 0 {
		t.Errorf("actions were asked for: %v", *asks)
	}
}

func TestResponsesForbidFramingAndForeignScripts(t *testing.T) {
	s, _ := testServer(t, "", nil)
	w := do(s, "GET", "/", nil)
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, asset := range []string{"/static/app.js", "/static/style.css"} {
		if w := do(s, "GET", asset, nil); w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("GET %s: %d", asset, w.Code)
		}
	}
}

type errFor string

func (e errFor) Error() string { return string(e) }
