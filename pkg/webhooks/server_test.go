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
	return c.postRelease(path, ns, name, "")
}

// postRelease posts a payload naming a release (its checksum), as the
// controller does on every call and an approver may on /gate/open.
func (c gateClient) postRelease(path, ns, name, checksum string) (int, string) {
	c.t.Helper()
	body, _ := json.Marshal(Payload{Name: name, Namespace: ns, Checksum: checksum})
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
	if code, _ := c.postRelease("/gate/check", "shop", "web", "r1"); code != http.StatusForbidden {
		t.Fatalf("a new gate answers %d, want 403 (closed)", code)
	}
	if code, _ := c.post("/gate/open", "shop", "web"); code != http.StatusOK {
		t.Fatalf("/gate/open = %d", code)
	}
	if code, _ := c.postRelease("/gate/check", "shop", "web", "r1"); code != http.StatusOK {
		t.Errorf("open gate answers %d, want 200", code)
	}
	if code, _ := c.post("/gate/check", "shop", "web"); code != http.StatusOK {
		t.Errorf("a check naming no release answers %d, want 200: it asks about the latest release checked", code)
	}
	if code, _ := c.postRelease("/gate/check", "shop", "api", "r1"); code != http.StatusForbidden {
		t.Errorf("another rollout's gate answers %d, want 403: gates are per rollout", code)
	}
	if code, _ := c.postRelease("/gate/check", "other", "web", "r1"); code != http.StatusForbidden {
		t.Errorf("same name in another namespace answers %d, want 403", code)
	}
	c.post("/gate/close", "shop", "web")
	if code, _ := c.postRelease("/gate/check", "shop", "web", "r1"); code != http.StatusForbidden {
		t.Errorf("closed gate answers %d, want 403", code)
	}
}

func TestAnOpenNamingNoReleaseBeforeAnyCheckIsRefused(t *testing.T) {
	gs, c := serve(t, ServerOptions{})
	// No release is waiting: opening "the gate" would approve whichever
	// release comes next.
	code, msg := c.post("/gate/open", "shop", "web")
	if code != http.StatusConflict || !strings.Contains(msg, "checksum") {
		t.Errorf("/gate/open before any check = %d %q, want 409 asking for the checksum", code, msg)
	}
	if code, _ := c.post("/gate/check", "shop", "web"); code != http.StatusForbidden {
		t.Errorf("a check naming no release before any check = %d, want 403", code)
	}
	// Naming the release opens it ahead of its first check.
	if code, _ := c.postRelease("/gate/open", "shop", "web", "next"); code != http.StatusOK {
		t.Fatalf("/gate/open naming a release = %d, want 200", code)
	}
	if !gs.GateOpen("shop", "web", "next") {
		t.Errorf("the named release's gate is not open")
	}
	if code, _ := c.postRelease("/gate/check", "shop", "web", "next"); code != http.StatusOK {
		t.Errorf("the first check of a release opened ahead answers %d, want 200", code)
	}
}

func TestRollbackCheckPassesOnlyOnceARollbackIsAsked(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	if code, _ := c.postRelease("/rollback/check", "shop", "web", "r1"); code != http.StatusForbidden {
		t.Errorf("/rollback/check = %d before any ask, want 403 (no rollback)", code)
	}
	c.post("/rollback/open", "shop", "web")
	if code, _ := c.postRelease("/rollback/check", "shop", "web", "r1"); code != http.StatusOK {
		t.Errorf("/rollback/check = %d after /rollback/open, want 200 (roll back)", code)
	}
	c.post("/rollback/close", "shop", "web")
	if code, _ := c.postRelease("/rollback/check", "shop", "web", "r1"); code != http.StatusForbidden {
		t.Errorf("/rollback/check = %d after /rollback/close, want 403", code)
	}
}

func TestGateStateSurvivesARestartWithTheSameFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gates.json")
	_, c := serve(t, ServerOptions{StateFile: file})
	c.postRelease("/gate/check", "shop", "web", "w1")
	c.post("/gate/open", "shop", "web")
	c.postRelease("/gate/open", "shop", "api", "a1")
	c.postRelease("/gate/close", "shop", "api", "a1")
	c.postRelease("/rollback/open", "shop", "cart", "c1")
	// A release of shop/old was approved, then a later one came: the
	// approval was dropped, in the file too.
	c.postRelease("/gate/open", "shop", "old", "o1")
	c.postRelease("/gate/check", "shop", "old", "o2")

	restarted, c2 := serve(t, ServerOptions{StateFile: file})
	if !restarted.GateOpen("shop", "web", "w1") {
		t.Errorf("an opened gate is closed after the restart")
	}
	if code, _ := c2.postRelease("/gate/check", "shop", "api", "a1"); code != http.StatusForbidden {
		t.Errorf("a closed gate answers %d after the restart, want 403: a restart must not open it", code)
	}
	if code, _ := c2.postRelease("/rollback/check", "shop", "cart", "c1"); code != http.StatusOK {
		t.Errorf("an asked rollback answers %d after the restart, want 200", code)
	}
	if restarted.GateOpen("shop", "old", "o1") {
		t.Errorf("the approval of a release dropped by a later one is back after the restart")
	}
	if code, _ := c2.postRelease("/gate/check", "shop", "web", "w2"); code != http.StatusForbidden {
		t.Errorf("the next release of shop/web answers %d after the restart, want 403", code)
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
	if code, msg := c.postRelease("/gate/open", "shop", "web", "r1"); code != http.StatusInternalServerError || !strings.Contains(msg, "saving gate state") {
		t.Errorf("/gate/open with an unwritable state = %d %q, want 500", code, msg)
	}
	if gs.GateOpen("shop", "web", "r1") {
		t.Errorf("the gate is open in memory though its state could not be saved")
	}
}

func TestACheckThatCannotSaveTheDropOfAnOldApprovalFailsAndKeepsIt(t *testing.T) {
	dir := t.TempDir()
	gs, c := serve(t, ServerOptions{StateFile: filepath.Join(dir, "gates.json")})
	c.postRelease("/gate/open", "shop", "web", "r1")
	// From now on every save fails.
	gs.opts.StateFile = filepath.Join(dir, "missing", "gates.json")
	if code, msg := c.postRelease("/gate/check", "shop", "web", "r2"); code != http.StatusInternalServerError || !strings.Contains(msg, "saving gate state") {
		t.Errorf("a check that cannot save the drop = %d %q, want 500 (a closed gate to the controller)", code, msg)
	}
	// Nothing was dropped in memory that the file still holds.
	if !gs.GateOpen("shop", "web", "r1") {
		t.Errorf("the approval of r1 was dropped in memory though the file still holds it")
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

func TestAVersion1StateFileLoadsWithItsGatesClosed(t *testing.T) {
	// Version 1 kept gates by rollout: which release they were opened for
	// is unknown, and applying them to the next one is the old defect.
	file := filepath.Join(t.TempDir(), "gates.json")
	v1 := `{"gates": {"shop/web": true}, "rollbacks": {"shop/cart": true}}`
	if err := os.WriteFile(file, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, c := serve(t, ServerOptions{StateFile: file})
	if code, _ := c.postRelease("/gate/check", "shop", "web", "r1"); code != http.StatusForbidden {
		t.Errorf("a gate open in a version 1 file answers %d, want 403", code)
	}
	if code, _ := c.postRelease("/rollback/check", "shop", "cart", "r1"); code != http.StatusForbidden {
		t.Errorf("a rollback asked in a version 1 file answers %d, want 403", code)
	}
	// The file is written in the new format at the next change.
	if code, _ := c.post("/gate/open", "shop", "web"); code != http.StatusOK {
		t.Fatalf("/gate/open = %d", code)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var st gateState
	if err := json.Unmarshal(raw, &st); err != nil || st.Version != 2 || !st.Rollouts["shop/web"]["r1"].GateOpen {
		t.Errorf("state file after a change = %s (%v), want version 2 with shop/web r1 open", raw, err)
	}
}

func TestAStateFileFromANewerLoadtesterIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gates.json")
	if err := os.WriteFile(file, []byte(`{"version": 3, "rollouts": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGateServer(ServerOptions{StateFile: file}); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Errorf("NewGateServer with a version 3 file = %v, want an error naming the version", err)
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
	if gs.GateOpen("shop", "web", "r1") || gs.RollbackAsked("shop", "web", "r1") {
		t.Fatalf("an unauthenticated request changed the state")
	}
	if code, _ := c.postRelease("/gate/open", "shop", "web", "r1"); code != http.StatusOK {
		t.Errorf("/gate/open with the token = %d, want 200", code)
	}
	// Without --token-for-hooks, checks stay open to a controller that
	// sends no token.
	if code, _ := anon.postRelease("/gate/check", "shop", "web", "r1"); code != http.StatusOK {
		t.Errorf("/gate/check without a token = %d, want 200", code)
	}
}

func TestTheTokenGuardsLoadRunsWithoutTokenForHooks(t *testing.T) {
	// A load run sends up to thousands of requests a second for minutes
	// to a URL of the caller's choosing: an action, never a mere read.
	started := 0
	_, c := serve(t, ServerOptions{Token: "s3cret", Load: func(context.Context, Payload) (int, any) {
		started++
		return http.StatusAccepted, map[string]string{"status": "started"}
	}})
	anon := c
	anon.token = ""
	if code, _ := anon.post("/", "shop", "web"); code != http.StatusUnauthorized {
		t.Errorf("/ without a token = %d, want 401", code)
	}
	if started != 0 {
		t.Fatalf("a load run started without the token")
	}
	if code, _ := c.post("/", "shop", "web"); code != http.StatusAccepted || started != 1 {
		t.Errorf("/ with the token = %d (%d runs), want 202 and one run", code, started)
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
	// The next release's gate is closed again.
	if res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookConfirmPromotion, "def"); res.AllPassed {
		t.Errorf("the next release passed the gate opened for the one before: %+v", res)
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

// TestAnApprovalOrARollbackHoldsForOneReleaseOnly: gates used to be kept by
// rollout, so one approval approved every later release and one rollback
// request failed every later release. They are kept by release now.
func TestAnApprovalOrARollbackHoldsForOneReleaseOnly(t *testing.T) {
	_, c := serve(t, ServerOptions{})
	// Release A reaches its gate; an approver opens it without naming it.
	if code, _ := c.postRelease("/gate/check", "shop", "web", "aaaa"); code != http.StatusForbidden {
		t.Fatalf("release A's new gate answers %d, want 403", code)
	}
	if code, msg := c.post("/gate/open", "shop", "web"); code != http.StatusOK || !strings.Contains(msg, "aaaa") {
		t.Fatalf("/gate/open without a checksum = %d %q, want 200 naming release A", code, msg)
	}
	if code, _ := c.postRelease("/gate/check", "shop", "web", "aaaa"); code != http.StatusOK {
		t.Fatalf("release A's opened gate answers %d, want 200", code)
	}
	// Release B comes: its gate is closed.
	if code, msg := c.postRelease("/gate/check", "shop", "web", "bbbb"); code != http.StatusForbidden {
		t.Errorf("release B's gate answers %d %q after release A was approved, want 403: an approval is for one release", code, msg)
	}
	// And A's approval is gone with it: going back to A is a new release too.
	if code, _ := c.postRelease("/gate/check", "shop", "web", "aaaa"); code != http.StatusForbidden {
		t.Errorf("release A's gate answers %d once release B came, want 403", code)
	}

	// A rollback asked for release C does not fail release D.
	c.postRelease("/rollback/check", "shop", "web", "cccc")
	if code, msg := c.post("/rollback/open", "shop", "web"); code != http.StatusOK || !strings.Contains(msg, "cccc") {
		t.Fatalf("/rollback/open without a checksum = %d %q, want 200 naming release C", code, msg)
	}
	if code, _ := c.postRelease("/rollback/check", "shop", "web", "cccc"); code != http.StatusOK {
		t.Errorf("release C's rollback check answers %d after the ask, want 200", code)
	}
	if code, _ := c.postRelease("/rollback/check", "shop", "web", "dddd"); code != http.StatusForbidden {
		t.Errorf("release D's rollback check answers %d after a rollback of C was asked, want 403", code)
	}
}
