package webhooks

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
)

// maxRequestBody bounds the payload a gate server reads.
const maxRequestBody = 1 << 20

// LoadFunc starts the load run described by a payload. It returns the HTTP
// status and the JSON-encodable body of the answer.
type LoadFunc func(ctx context.Context, p Payload) (status int, body any)

// ServerOptions configure a GateServer.
type ServerOptions struct {
	// StateFile keeps the gates across restarts; empty keeps them in memory.
	StateFile string
	// Token, when set, is the bearer token required by the control
	// endpoints (/gate/open|close, /rollback/open|close) and the load
	// endpoint. TokenFile, when set, is read instead (again when it changes).
	Token     string
	TokenFile *TokenFile
	// TokenForHooks also requires the token on the endpoints the
	// controller calls to read gates (checks, approve and halt); the
	// controller must then send it (webhooks.TokenTransport).
	TokenForHooks bool
	// AllowedNamespaces, when not empty, are the only namespaces served;
	// requests for others are refused with 403.
	AllowedNamespaces []string
	// Load serves "/" (404 when nil).
	Load LoadFunc
	// Log receives what the server decides on its own (state dropped at
	// start, state that could not be saved).
	Log logr.Logger
}

// release is what the loadtester holds for one release of a Rollout. The
// zero value, a closed gate and no rollback asked, is never stored.
type release struct {
	GateOpen      bool `json:"gateOpen,omitempty"`
	RollbackAsked bool `json:"rollbackAsked,omitempty"`
}

// gateState is what the state file holds: by rollout (namespace/name), then
// by release (the payload's checksum, the revision under release), the open
// gates and the asked rollbacks. A release that is absent is closed. Gates
// are kept by release so that an approval, or a rollback request, holds for
// the release it was given for and never for a later one.
type gateState struct {
	Version  int                           `json:"version"`
	Rollouts map[string]map[string]release `json:"rollouts"`
}

// stateVersion is the version of the state file this server writes.
// Version 1 (no version field) kept "gates" and "rollbacks" by rollout only.
const stateVersion = 2

// stateFile is a state file as read, of either version.
type stateFile struct {
	gateState
	Gates     map[string]bool `json:"gates"`
	Rollbacks map[string]bool `json:"rollbacks"`
}

// maxTracked bounds the rollouts whose latest release is remembered: the
// checks that tell it may come from anyone when hooks need no token.
const maxTracked = 10000

// Payload fields longer than these are refused: they become keys of the
// state, in memory and in the file.
const (
	maxNamespace = 63
	maxName      = 253
	maxChecksum  = 64
)

// toggle is one of a release's two switches, with the words its endpoints
// answer with.
type toggle struct {
	get          func(release) bool
	set          func(*release, bool)
	yes, no      string // /check
	opened, shut string // /open, /close
}

var (
	gateToggle = toggle{
		get: func(r release) bool { return r.GateOpen }, set: func(r *release, v bool) { r.GateOpen = v },
		yes: "gate open", no: "gate closed", opened: "gate opened", shut: "gate closed",
	}
	rollbackToggle = toggle{
		get: func(r release) bool { return r.RollbackAsked }, set: func(r *release, v bool) { r.RollbackAsked = v },
		yes: "rollback asked", no: "no rollback asked", opened: "rollback asked", shut: "rollback withdrawn",
	}
)

// GateServer serves the manual gates of the loadtester:
//
//	/gate/approve   always 200
//	/gate/halt      always 403
//	/gate/check     200 when the gate of the release is open, 403 when closed
//	/gate/open      opens the gate of a release
//	/gate/close     closes it
//	/rollback/check 200 when a rollback of the release was asked, 403 otherwise
//	/rollback/open  asks for a rollback of a release
//	/rollback/close withdraws it
//
// Every request is a POST of a Payload; the rollout is its namespace/name
// and the release its checksum. The controller always names the release;
// a person opening or closing may leave it out, and then means the release
// of the latest check of that rollout (the one waiting at its gate). A
// check for a release drops what is held for the rollout's other releases.
// Gates start closed, and their state is written to a file (temp file and
// rename) before an open or close is answered, so a restart never opens a
// closed gate.
type GateServer struct {
	opts    ServerOptions
	allowed map[string]bool
	mux     *http.ServeMux

	mu    sync.Mutex
	state gateState
	// latest is the release of the latest check of each rollout. It is
	// not saved: after a restart the next check tells it again.
	latest map[string]string
}

// NewGateServer loads the state file (a missing file is an empty state) and
// returns the server.
func NewGateServer(opts ServerOptions) (*GateServer, error) {
	s := &GateServer{opts: opts, state: emptyState(), latest: map[string]string{}}
	if len(opts.AllowedNamespaces) > 0 {
		s.allowed = map[string]bool{}
		for _, ns := range opts.AllowedNamespaces {
			s.allowed[ns] = true
		}
	}
	if opts.StateFile != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/gate/approve", s.hook(func(Payload) (int, string) { return http.StatusOK, "approved" }))
	s.mux.HandleFunc("/gate/halt", s.hook(func(Payload) (int, string) { return http.StatusForbidden, "halted" }))
	s.mux.HandleFunc("/gate/check", s.hook(s.check(gateToggle)))
	s.mux.HandleFunc("/rollback/check", s.hook(s.check(rollbackToggle)))
	s.mux.HandleFunc("/gate/open", s.control(gateToggle, true))
	s.mux.HandleFunc("/gate/close", s.control(gateToggle, false))
	s.mux.HandleFunc("/rollback/open", s.control(rollbackToggle, true))
	s.mux.HandleFunc("/rollback/close", s.control(rollbackToggle, false))
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	s.mux.HandleFunc("/{$}", s.load0)
	return s, nil
}

func emptyState() gateState {
	return gateState{Version: stateVersion, Rollouts: map[string]map[string]release{}}
}

// ServeHTTP routes a request.
func (s *GateServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// GateOpen reports whether the gate of that release of namespace/name is open.
func (s *GateServer) GateOpen(namespace, name, checksum string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Rollouts[namespace+"/"+name][checksum].GateOpen
}

// RollbackAsked reports whether a rollback of that release of
// namespace/name was asked.
func (s *GateServer) RollbackAsked(namespace, name, checksum string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Rollouts[namespace+"/"+name][checksum].RollbackAsked
}

// hook wraps an endpoint the controller calls.
func (s *GateServer) hook(answer func(Payload) (int, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.admit(w, r, s.opts.TokenForHooks)
		if !ok {
			return
		}
		code, msg := answer(p)
		writeText(w, code, msg)
	}
}

// check answers for the release the payload names; without one (a person
// asking), for the latest release checked, changing nothing.
func (s *GateServer) check(tg toggle) func(Payload) (int, string) {
	return func(p Payload) (int, string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		k, rel := key(p), p.Checksum
		if rel == "" {
			rel = s.latest[k]
		} else if err := s.seen(k, rel); err != nil {
			return http.StatusInternalServerError, "saving gate state: " + err.Error()
		}
		if rel == "" {
			return http.StatusForbidden, tg.no + " for " + k + ": no release checked yet"
		}
		if tg.get(s.state.Rollouts[k][rel]) {
			return http.StatusOK, tg.yes + " for " + k + " release " + rel
		}
		return http.StatusForbidden, tg.no + " for " + k + " release " + rel
	}
}

// seen records that rel is the release of rollout k under way, and drops
// what is held for k's other releases: an approval or a rollback request
// given for one release must not carry over to a later one (nor to an
// earlier one released again), and the state stays bounded. The drop is
// saved before the check is answered, so that a restart does not bring an
// old approval back; when it cannot be, nothing is dropped and the check
// fails (a closed gate, no rollback). The caller holds s.mu.
func (s *GateServer) seen(k, rel string) error {
	if _, ok := s.latest[k]; !ok && len(s.latest) >= maxTracked {
		// Forget any one: its next open without a checksum waits for its
		// next check.
		for other := range s.latest {
			delete(s.latest, other)
			break
		}
	}
	s.latest[k] = rel
	held := s.state.Rollouts[k]
	if len(held) == 0 || (len(held) == 1 && held[rel] != release{}) {
		return nil
	}
	kept := map[string]release{}
	if r, ok := held[rel]; ok {
		kept[rel] = r
	}
	s.state.Rollouts[k] = kept
	if len(kept) == 0 {
		delete(s.state.Rollouts, k)
	}
	if err := s.save(); err != nil {
		s.state.Rollouts[k] = held
		s.opts.Log.Error(err, "saving gate state", "rollout", k, "release", rel)
		return err
	}
	return nil
}

// control wraps an endpoint that opens or closes a gate or rollback.
func (s *GateServer) control(tg toggle, open bool) http.HandlerFunc {
	msg := tg.shut
	if open {
		msg = tg.opened
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.admit(w, r, true)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		k, rel := key(p), p.Checksum
		if rel == "" {
			rel = s.latest[k]
		}
		if rel == "" {
			writeText(w, http.StatusConflict, fmt.Sprintf("no release of %s has been checked at a gate or rollback check yet: "+
				"wait for its first check, or name the release with \"checksum\"", k))
			return
		}
		was := s.state.Rollouts[k][rel]
		now := was
		tg.set(&now, open)
		s.put(k, rel, now)
		if err := s.save(); err != nil {
			// Keep memory and file in step: undo.
			s.put(k, rel, was)
			writeText(w, http.StatusInternalServerError, "saving gate state: "+err.Error())
			return
		}
		writeText(w, http.StatusOK, msg+" for "+k+" release "+rel)
	}
}

// put sets what is held for a release, storing only what is not the zero
// value. The caller holds s.mu.
func (s *GateServer) put(k, rel string, r release) {
	held := s.state.Rollouts[k]
	if r == (release{}) {
		delete(held, rel)
		if len(held) == 0 {
			delete(s.state.Rollouts, k)
		}
		return
	}
	if held == nil {
		held = map[string]release{}
		s.state.Rollouts[k] = held
	}
	held[rel] = r
}

// load0 serves "/": the load endpoint.
func (s *GateServer) load0(w http.ResponseWriter, r *http.Request) {
	if s.opts.Load == nil {
		http.NotFound(w, r)
		return
	}
	// A load run is an action, not a read: it always needs the token.
	p, ok := s.admit(w, r, true)
	if !ok {
		return
	}
	code, body := s.opts.Load(r.Context(), p)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// admit checks the method, the token and the namespace and decodes the
// payload; it answers the request itself when it refuses it.
func (s *GateServer) admit(w http.ResponseWriter, r *http.Request, needToken bool) (Payload, bool) {
	var p Payload
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeText(w, http.StatusMethodNotAllowed, "use POST with a JSON payload")
		return p, false
	}
	if needToken {
		want, err := s.token()
		if err != nil {
			// Fail closed: a token that cannot be read lets no one in.
			writeText(w, http.StatusServiceUnavailable, "reading the token: "+err.Error())
			return p, false
		}
		if want != "" && !tokenOK(r, want) {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeText(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return p, false
		}
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&p); err != nil {
		writeText(w, http.StatusBadRequest, "decoding payload: "+err.Error())
		return p, false
	}
	if p.Name == "" || p.Namespace == "" {
		writeText(w, http.StatusBadRequest, "payload needs name and namespace")
		return p, false
	}
	if len(p.Namespace) > maxNamespace || len(p.Name) > maxName || len(p.Checksum) > maxChecksum {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("payload namespace, name or checksum too long (at most %d, %d and %d bytes)",
			maxNamespace, maxName, maxChecksum))
		return p, false
	}
	if s.allowed != nil && !s.allowed[p.Namespace] {
		writeText(w, http.StatusForbidden, fmt.Sprintf("namespace %q is not allowed by this loadtester", p.Namespace))
		return p, false
	}
	return p, true
}

// token is the token the guarded endpoints need; "" when none.
func (s *GateServer) token() (string, error) {
	if s.opts.TokenFile != nil {
		return s.opts.TokenFile.Token()
	}
	return s.opts.Token, nil
}

func tokenOK(r *http.Request, want string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// load reads the state file; a missing file is an empty state. A version 1
// file (gates kept by rollout, not release) is read without its gates: its
// open gates and asked rollbacks were for releases it did not record, and
// applying them to whatever release comes next is the defect version 2
// fixes. They are logged, to be given again.
func (s *GateServer) load() error {
	raw, err := os.ReadFile(s.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading gate state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("decoding gate state %s: %w", s.opts.StateFile, err)
	}
	switch {
	case st.Version > stateVersion:
		return fmt.Errorf("gate state %s has version %d, newer than this loadtester's %d", s.opts.StateFile, st.Version, stateVersion)
	case st.Version < stateVersion:
		dropped := append(trueKeys(st.Gates, "gate "), trueKeys(st.Rollbacks, "rollback ")...)
		if len(dropped) > 0 {
			s.opts.Log.Info("dropping the gates of a version 1 state file: they were kept by rollout, not release; open them again",
				"file", s.opts.StateFile, "dropped", dropped)
		}
		return nil
	}
	for k, rels := range st.Rollouts {
		for rel, r := range rels {
			s.put(k, rel, r)
		}
	}
	return nil
}

// trueKeys lists the keys set in m, sorted, each after prefix.
func trueKeys(m map[string]bool, prefix string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] {
			out = append(out, prefix+k)
		}
	}
	return out
}

// save writes the state atomically: a temp file in the same directory,
// synced, then renamed over the state file. The caller holds s.mu.
func (s *GateServer) save() error {
	if s.opts.StateFile == "" {
		return nil
	}
	raw, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.opts.StateFile)
	f, err := os.CreateTemp(dir, ".gates-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if _, err := f.Write(raw); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.opts.StateFile); err != nil {
		return err
	}
	// Make the rename durable; not every file system supports it.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func key(p Payload) string { return p.Namespace + "/" + p.Name }

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
