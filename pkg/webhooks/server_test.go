package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// gateClient calls a gate server as the controller and an approver would.
type gateClient struct {
	t     *testing.T
	url   string
	token string
}

func (c gateClient) post(path, ns, name string) (int, string) {
	c.t.Helper()
	body, _ := json.Marshal(Payload{Name: name, Namespace: ns})
	req, err := http.NewRequest(http.MethodPost, c.url+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

func serve(t *testing.T, opts ServerOptions) (*GateServer, gateClient) {
	t.Helper()
	gs, err := NewGateServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gs)
	t.Cleanup(srv.Close)
	return gs, gateClient{t: t, url: srv.URL, token: opts.Token}
}

func TestApproveAlwaysPassesAndHaltAlwaysFails(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	if code, _ := c.post("/gate/approve", "shop", "web"); code != http.StatusOK {
		t.Errorf("/gate/approve = %d, want 200", code)
	}
	if code, _ := c.post("/gate/halt", "shop", "web"); code != http.StatusForbidden {
		t.Errorf("/gate/halt = %d, want 403", code)
	}
}

func TestGatesStartClosedAndOpenPerRollout(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	if code, _ := c.post("/gate/check", "shop", "web"); code != http.StatusForbidden {
		t.Fatalf("a new gate answers %d, want 403 (closed)", code)
	}
	if code, _ := c.post("/gate/open", "shop", "web"); code != http.StatusOK {
		t.Fatalf("/gate/open = %d", code)
	}
	if code, _ := c.post("/gate/check", "shop", "web"); code != http.StatusOK {
		t.Errorf("open gate answers %d, want 200", code)
	}
	if code, _ := c.post("/gate/check", "shop", "api"); code != http.StatusForbidden {
		t.Errorf("another rollout's gate answers %d, want 403: gates are per rollout", code)
	}
	if code, _ := c.post("/gate/check", "other", "web"); code != http.StatusForbidden {
		t.Errorf("same name in another namespace answers %d, want 403", code)
	}
	c.post("/gate/close", "shop", "web")
	if code, _ := c.post("/gate/check", "shop", "web"); code != http.StatusForbidden {
		t.Errorf("closed gate answers %d, want 403", code)
	}
}

func TestRollbackCheckPassesOnlyOnceARollbackIsAsked(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	if code, _ := c.post("/rollback/check", "shop", "web"); code != http.StatusForbidden {
		t.Errorf("/rollback/check = %d before any ask, want 403 (no rollback)", code)
	}
	c.post("/rollback/open", "shop", "web")
	if code, _ := c.post("/rollback/check", "shop", "web"); code != http.StatusOK {
		t.Errorf("/rollback/check = %d after /rollback/open, want 200 (roll back)", code)
	}
	c.post("/rollback/close", "shop", "web")
	if code, _ := c.post("/rollback/check", "shop", "web"); code != http.StatusForbidden {
		t.Errorf("/rollback/check = %d after /rollback/close, want 403", code)
	}
}

func TestGateStateSurvivesARestartWithTheSameFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gates.json")
	_, c := serve(t, ServerOptions{StateFile: file})
	c.post("/gate/open", "shop", "web")
	c.post("/gate/open", "shop", "api")
	c.post("/gate/close", "shop", "api")
	c.post("/rollback/open", "shop", "cart")

	restarted, c2 := serve(t, ServerOptions{StateFile: file})
	if !restarted.GateOpen("shop", "web") {
		t.Errorf("an opened gate is closed after the restart")
	}
	if code, _ := c2.post("/gate/check", "shop", "api"); code != http.StatusForbidden {
		t.Errorf("a closed gate answers %d after the restart, want 403: a restart must not open it", code)
	}
	if code, _ := c2.post("/rollback/check", "shop", "cart"); code != http.StatusOK {
		t.Errorf("an asked rollback answers %d after the restart, want 200", code)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".gates-*"))
	if len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
}

func TestAnUnwritableStateFileRefusesTheChangeAndKeepsTheGateClosed(t *testing.T) {
	// The state file's directory does not exist: every save fails.
	file := filepath.Join(t.TempDir(), "missing", "gates.json")
	gs, c := serve(t, ServerOptions{StateFile: file})
	if code, msg := c.post("/gate/open", "shop", "web"); code != http.StatusInternalServerError || !strings.Contains(msg, "saving gate state") {
		t.Errorf("/gate/open with an unwritable state = %d %q, want 500", code, msg)
	}
	if gs.GateOpen("shop", "web") {
		t.Errorf("the gate is open in memory though its state could not be saved")
	}
}

func TestACorruptStateFileIsAnErrorNotAnEmptyState(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gates.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGateServer(ServerOptions{StateFile: file}); err == nil {
		t.Errorf("NewGateServer accepted a corrupt state file")
	}
}

func TestNamespacesOutsideTheAllowListAreRefused(t *testing.T) {
	_, c := serve(t, ServerOptions{AllowedNamespaces: []string{"shop"}})
	code, msg := c.post("/gate/approve", "payments", "web")
	if code != http.StatusForbidden || !strings.Contains(msg, `namespace "payments" is not allowed`) {
		t.Errorf("/gate/approve from another namespace = %d %q, want 403 saying why", code, msg)
	}
	if code, _ := c.post("/gate/open", "payments", "web"); code != http.StatusForbidden {
		t.Errorf("/gate/open from another namespace = %d, want 403", code)
	}
	if code, _ := c.post("/gate/approve", "shop", "web"); code != http.StatusOK {
		t.Errorf("/gate/approve from an allowed namespace = %d, want 200", code)
	}
}

func TestTheTokenGuardsTheControlEndpoints(t *testing.T) {
	gs, c := serve(t, ServerOptions{Token: "s3cret"})
	anon, wrong := c, c
	anon.token, wrong.token = "", "guess"
	if code, _ := anon.post("/gate/open", "shop", "web"); code != http.StatusUnauthorized {
		t.Errorf("/gate/open without a token = %d, want 401", code)
	}
	if code, _ := wrong.post("/rollback/open", "shop", "web"); code != http.StatusUnauthorized {
		t.Errorf("/rollback/open with a wrong token = %d, want 401", code)
	}
	if gs.GateOpen("shop", "web") || gs.RollbackAsked("shop", "web") {
		t.Fatalf("an unauthenticated request changed the state")
	}
	if code, _ := c.post("/gate/open", "shop", "web"); code != http.StatusOK {
		t.Errorf("/gate/open with the token = %d, want 200", code)
	}
	// The controller sends no token by default: checks stay open to it.
	if code, _ := anon.post("/gate/check", "shop", "web"); code != http.StatusOK {
		t.Errorf("/gate/check without a token = %d, want 200", code)
	}
}

func TestTokenForHooksGuardsEveryEndpointAndTheClientCanSendIt(t *testing.T) {
	_, c := serve(t, ServerOptions{Token: "s3cret", TokenForHooks: true})
	anon := c
	anon.token = ""
	for _, path := range []string{"/gate/approve", "/gate/check", "/rollback/check"} {
		if code, _ := anon.post(path, "shop", "web"); code != http.StatusUnauthorized {
			t.Errorf("%s without a token = %d, want 401", path, code)
		}
	}
	client := &Client{Header: http.Header{"Authorization": {"Bearer s3cret"}}}
	hook := sluicev1.Webhook{Name: "approve", URL: c.url + "/gate/approve"}
	if err := client.Call(context.Background(), hook, Payload{Name: "web", Namespace: "shop"}); err != nil {
		t.Errorf("a client with the token header: %v", err)
	}
}

func TestTheControllerClientReadsGates(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	ro := &sluicev1.Rollout{}
	ro.Name, ro.Namespace = "web", "shop"
	ro.Spec.Analysis = &sluicev1.Analysis{Webhooks: []sluicev1.Webhook{
		{Name: "approval", Type: sluicev1.HookConfirmPromotion, URL: c.url + "/gate/check"},
	}}
	res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookConfirmPromotion, "abc")
	if res.AllPassed || !strings.Contains(res.Message, "403 Forbidden: gate closed for shop/web") {
		t.Errorf("closed gate: %+v, want a failure naming the gate and the body", res)
	}
	c.post("/gate/open", "shop", "web")
	if res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookConfirmPromotion, "abc"); !res.AllPassed {
		t.Errorf("open gate: %+v", res)
	}
}

func TestBadRequestsAreRefused(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	if code, _ := c.post("/gate/open", "", "web"); code != http.StatusBadRequest {
		t.Errorf("payload without namespace = %d, want 400", code)
	}
	resp, err := http.Get(c.url + "/gate/check")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /gate/check = %d, want 405", resp.StatusCode)
	}
	if code, _ := c.post("/", "shop", "web"); code != http.StatusNotFound {
		t.Errorf("/ without a load function = %d, want 404", code)
	}
}

func TestTheLoadEndpointGetsThePayload(t *testing.T) {
	var got Payload
	_, c := serve(t, ServerOptions{Load: func(_ context.Context, p Payload) (int, any) {
		got = p
		return http.StatusAccepted, map[string]string{"status": "started"}
	}})
	code, msg := c.post("/", "shop", "web")
	if code != http.StatusAccepted || !strings.Contains(msg, `"started"`) || got.Name != "web" || got.Namespace != "shop" {
		t.Errorf("/ = %d %q with payload %+v", code, msg, got)
	}
}
