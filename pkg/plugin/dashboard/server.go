// Package dashboard serves `kubectl sluice dashboard`: one page, embedded in
// the plugin binary, that shows the Rollouts in scope live and asks for the
// plugin's actions.
//
// The server talks to the API server only with the user's own kubeconfig
// credentials, so RBAC decides what the page shows and which actions
// succeed. Two watches (Rollouts, and events about Rollouts) are shared by
// every browser tab, and changes reach the tabs as server-sent events.
//
// Browsers reach it on a loopback address by default. It answers only
// requests whose Host (and Origin, when sent) is its own address, which
// defeats DNS rebinding, and an action needs the per-process CSRF token the
// page carries, which defeats cross-site requests.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

//go:embed web
var webFS embed.FS

// CSRFHeader carries the page's CSRF token on action requests.
const CSRFHeader = "X-Sluice-CSRF"

// AskFunc asks the controller for an action on the Rollout ns/name and
// returns who asked (the plugin's action code).
type AskFunc func(ctx context.Context, ns, name string, action sluicev1.Action) (by string, err error)

// Options is what the dashboard needs from the plugin.
type Options struct {
	// Dynamic and Kube are clients built from the user's kubeconfig.
	Dynamic dynamic.Interface
	Kube    kubernetes.Interface
	// Namespace limits the dashboard to one namespace; "" is every one.
	Namespace string
	// User is who the API server says the user is, shown on the page.
	User string
	// Ask carries out an action.
	Ask AskFunc
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// actions are the actions the page may ask for, by the name it sends.
var actions = map[string]sluicev1.Action{
	string(sluicev1.ActionPromote):     sluicev1.ActionPromote,
	string(sluicev1.ActionPromoteFull): sluicev1.ActionPromoteFull,
	string(sluicev1.ActionAbort):       sluicev1.ActionAbort,
	string(sluicev1.ActionRetry):       sluicev1.ActionRetry,
	string(sluicev1.ActionPause):       sluicev1.ActionPause,
	string(sluicev1.ActionResume):      sluicev1.ActionResume,
}

// Server is the dashboard of one plugin process.
type Server struct {
	opts  Options
	token string
	// hosts are the Host header values that name this server.
	hosts map[string]bool
	store *store
	page  *template.Template
}

// New builds the dashboard for a server listening on addr (the listener's
// actual address, port included).
func New(opts Options, addr net.Addr) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("making the CSRF token: %w", err)
	}
	hosts, err := hostNames(addr)
	if err != nil {
		return nil, err
	}
	page, err := template.ParseFS(webFS, "web/index.html")
	if err != nil {
		return nil, err
	}
	return &Server{opts: opts, token: hex.EncodeToString(b), hosts: hosts, store: newStore(opts.Now), page: page}, nil
}

// hostNames are the Host header values a browser sends to addr: the
// address itself, and for a loopback address, localhost and the other
// loopback spellings with the same port.
func hostNames(addr net.Addr) (map[string]bool, error) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, fmt.Errorf("reading the listen address %s: %w", addr, err)
	}
	names := map[string]bool{net.JoinHostPort(host, port): true}
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			names[net.JoinHostPort(h, port)] = true
		}
	}
	if ip != nil && ip.IsUnspecified() {
		// Listening on every interface: each of their addresses names us.
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil, err
		}
		for _, a := range ifaddrs {
			if n, ok := a.(*net.IPNet); ok {
				names[net.JoinHostPort(n.IP.String(), port)] = true
			}
		}
	}
	return names, nil
}

// Serve starts the shared watches and serves the dashboard on ln until ctx
// ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.watch(ctx); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Streams end with ctx: their requests' contexts derive from it.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler is the dashboard's HTTP handler, guarded against foreign hosts,
// origins and cross-site actions.
func (s *Server) Handler() http.Handler {
	static, _ := fs.Sub(webFS, "web")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /api/stream", s.stream)
	mux.HandleFunc("POST /api/rollouts/{namespace}/{name}/actions/{action}", s.act)
	return s.guard(mux)
}

// guard refuses a request that does not name this server as its Host, that
// comes from another Origin, or that changes something without the CSRF
// token; it sets headers that keep the page from being framed or fed
// foreign scripts.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
			"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !s.hosts[r.Host] {
			refuse(w, http.StatusMisdirectedRequest, fmt.Sprintf("this dashboard does not answer for host %q", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !s.hosts[trimScheme(o)] {
			refuse(w, http.StatusForbidden, fmt.Sprintf("requests from origin %q are refused", o))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get(CSRFHeader)
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
				refuse(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// trimScheme turns an http Origin into host:port; any other scheme yields
// "", which names no host.
func trimScheme(origin string) string {
	const scheme = "http://"
	if len(origin) > len(scheme) && origin[:len(scheme)] == scheme {
		return origin[len(scheme):]
	}
	return ""
}

// refuse answers with a JSON error the page shows as it is.
func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// index serves the page with the CSRF token and the scope in it.
func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	scope := "namespace " + s.opts.Namespace
	if s.opts.Namespace == "" {
		scope = "all namespaces"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = s.page.Execute(w, map[string]string{"Token": s.token, "Scope": scope, "User": s.opts.User})
}

// streamKeepAlive is how often an idle stream gets a comment, so that a
// closed tab is noticed.
const streamKeepAlive = 30 * time.Second

// stream sends the tab a snapshot, then every change the watches see, as
// server-sent events.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	first, sub := s.store.subscribe()
	defer s.store.unsubscribe(sub)
	send := func(m message) bool {
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.event, m.data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(first) {
		return
	}
	tick := time.NewTicker(streamKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m, ok := <-sub.ch:
			if !ok || !send(m) {
				// Dropped for falling behind: the browser reconnects.
				return
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// act asks for an action through the plugin's action code, as the user.
// The API server's refusal is passed on word for word, with its status.
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	action, ok := actions[r.PathValue("action")]
	if !ok {
		refuse(w, http.StatusBadRequest, fmt.Sprintf("unknown action %q", r.PathValue("action")))
		return
	}
	if s.opts.Namespace != "" && ns != s.opts.Namespace {
		refuse(w, http.StatusForbidden, fmt.Sprintf("namespace %q is outside this dashboard's scope (%s)", ns, s.opts.Namespace))
		return
	}
	by, err := s.opts.Ask(r.Context(), ns, name, action)
	if err != nil {
		code := http.StatusBadGateway
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Code >= 400 {
			code = int(status.Status().Code)
		}
		refuse(w, code, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"message": fmt.Sprintf("rollout %s/%s: asked to %s (as %s)", ns, name, action, by),
		"by":      by, "action": string(action),
	})
}
