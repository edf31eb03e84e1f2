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
	"strings"
	"sync"
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
	// endpoints (/gate/open|close, /rollback/open|close).
	Token string
	// TokenForHooks also requires the token on the endpoints the
	// controller calls (checks, approve, halt and the load endpoint); the
	// controller must then send it (webhooks.Client.Header).
	TokenForHooks bool
	// AllowedNamespaces, when not empty, are the only namespaces served;
	// requests for others are refused with 403.
	AllowedNamespaces []string
	// Load serves "/" (404 when nil).
	Load LoadFunc
}

// gateState is what the state file holds: the open gates and the asked
// rollbacks, keyed by namespace/name. A key that is absent is closed.
type gateState struct {
	Gates     map[string]bool `json:"gates"`
	Rollbacks map[string]bool `json:"rollbacks"`
}

// GateServer serves the manual gates of the loadtester:
//
//	/gate/approve   always 200
//	/gate/halt      always 403
//	/gate/check     200 when the gate of the rollout is open, 403 when closed
//	/gate/open      opens the gate of the rollout
//	/gate/close     closes it
//	/rollback/check 200 when a rollback of the rollout was asked, 403 otherwise
//	/rollback/open  asks for a rollback
//	/rollback/close withdraws it
//
// Every request is a POST of a Payload; the rollout is its namespace/name.
// Gates start closed, and their state is written to a file (temp file and
// rename) before an open or close is answered, so a restart never opens a
// closed gate.
type GateServer struct {
	opts    ServerOptions
	allowed map[string]bool
	mux     *http.ServeMux

	mu    sync.Mutex
	state gateState
}

// NewGateServer loads the state file (a missing file is an empty state) and
// returns the server.
func NewGateServer(opts ServerOptions) (*GateServer, error) {
	s := &GateServer{opts: opts, state: gateState{Gates: map[string]bool{}, Rollbacks: map[string]bool{}}}
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
	s.mux.HandleFunc("/gate/check", s.hook(s.check(func(st *gateState) map[string]bool { return st.Gates }, "gate open", "gate closed")))
	s.mux.HandleFunc("/rollback/check", s.hook(s.check(func(st *gateState) map[string]bool { return st.Rollbacks }, "rollback asked", "no rollback asked")))
	s.mux.HandleFunc("/gate/open", s.control(func(st *gateState) map[string]bool { return st.Gates }, true, "gate opened"))
	s.mux.HandleFunc("/gate/close", s.control(func(st *gateState) map[string]bool { return st.Gates }, false, "gate closed"))
	s.mux.HandleFunc("/rollback/open", s.control(func(st *gateState) map[string]bool { return st.Rollbacks }, true, "rollback asked"))
	s.mux.HandleFunc("/rollback/close", s.control(func(st *gateState) map[string]bool { return st.Rollbacks }, false, "rollback withdrawn"))
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	s.mux.HandleFunc("/{$}", s.load0)
	return s, nil
}

// ServeHTTP routes a request.
func (s *GateServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// GateOpen reports whether the gate of namespace/name is open.
func (s *GateServer) GateOpen(namespace, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Gates[namespace+"/"+name]
}

// RollbackAsked reports whether a rollback of namespace/name was asked.
func (s *GateServer) RollbackAsked(namespace, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Rollbacks[namespace+"/"+name]
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

func (s *GateServer) check(table func(*gateState) map[string]bool, yes, no string) func(Payload) (int, string) {
	return func(p Payload) (int, string) {
		s.mu.Lock()
		open := table(&s.state)[key(p)]
		s.mu.Unlock()
		if open {
			return http.StatusOK, yes + " for " + key(p)
		}
		return http.StatusForbidden, no + " for " + key(p)
	}
}

// control wraps an endpoint that opens or closes a gate or rollback.
func (s *GateServer) control(table func(*gateState) map[string]bool, open bool, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.admit(w, r, true)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t := table(&s.state)
		k := key(p)
		was := t[k]
		if open {
			t[k] = true
		} else {
			delete(t, k)
		}
		if err := s.save(); err != nil {
			// Keep memory and file in step: undo.
			if was {
				t[k] = true
			} else {
				delete(t, k)
			}
			writeText(w, http.StatusInternalServerError, "saving gate state: "+err.Error())
			return
		}
		writeText(w, http.StatusOK, msg+" for "+k)
	}
}

// load0 serves "/": the load endpoint.
func (s *GateServer) load0(w http.ResponseWriter, r *http.Request) {
	if s.opts.Load == nil {
		http.NotFound(w, r)
		return
	}
	p, ok := s.admit(w, r, s.opts.TokenForHooks)
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
	if needToken && s.opts.Token != "" && !s.tokenOK(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeText(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return p, false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&p); err != nil {
		writeText(w, http.StatusBadRequest, "decoding payload: "+err.Error())
		return p, false
	}
	if p.Name == "" || p.Namespace == "" {
		writeText(w, http.StatusBadRequest, "payload needs name and namespace")
		return p, false
	}
	if s.allowed != nil && !s.allowed[p.Namespace] {
		writeText(w, http.StatusForbidden, fmt.Sprintf("namespace %q is not allowed by this loadtester", p.Namespace))
		return p, false
	}
	return p, true
}

func (s *GateServer) tokenOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

// load reads the state file; a missing file is an empty state.
func (s *GateServer) load() error {
	raw, err := os.ReadFile(s.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading gate state: %w", err)
	}
	var st gateState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("decoding gate state %s: %w", s.opts.StateFile, err)
	}
	for k, v := range st.Gates {
		if v {
			s.state.Gates[k] = true
		}
	}
	for k, v := range st.Rollbacks {
		if v {
			s.state.Rollbacks[k] = true
		}
	}
	return nil
}

// save writes the state atomically: a temp file in the same directory,
// synced, then renamed over the state file. The caller holds s.mu.
func (s *GateServer) save() error {
	if s.opts.StateFile == "" {
		return nil
	}
	raw, err := json.MarshalIndent(onlyTrue(s.state), "", "  ")
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

// onlyTrue keeps the entries that are set (the JSON encoder sorts the keys).
func onlyTrue(st gateState) gateState {
	out := gateState{Gates: map[string]bool{}, Rollbacks: map[string]bool{}}
	maps.Copy(out.Gates, st.Gates)
	maps.Copy(out.Rollbacks, st.Rollbacks)
	maps.DeleteFunc(out.Gates, func(_ string, v bool) bool { return !v })
	maps.DeleteFunc(out.Rollbacks, func(_ string, v bool) bool { return !v })
	return out
}

func key(p Payload) string { return p.Namespace + "/" + p.Name }

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
