// Command loadtester serves Sluice's webhook gates (manual approval and
// rollback gates kept in a state file) and runs load described in webhook
// metadata with its own Go load generator. It never runs commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"

	"github.com/sluice-dev/sluice/internal/cliflag"
	"github.com/sluice-dev/sluice/pkg/egress"
	"github.com/sluice-dev/sluice/pkg/loadtest"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadtester:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	listen        string
	stateFile     string
	token         string
	tokenFile     string
	tokenForHooks bool
	namespaces    string
	maxRuns       int
	maxRate       float64
	maxDuration   time.Duration
	egressAllow   string
	egressDeny    string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtester", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", ":8080", "address to serve on")
	fs.StringVar(&c.stateFile, "state-file", "/var/lib/loadtester/gates.json", "file that keeps the gates across restarts (empty: memory only)")
	fs.StringVar(&c.token, "token", "", "bearer token required by /gate/open|close, /rollback/open|close and load runs (prefer -token-file or $LOADTESTER_TOKEN)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token (read again when it changes)")
	fs.BoolVar(&c.tokenForHooks, "token-for-hooks", false, "also require the token on the gate checks, approve and halt")
	fs.StringVar(&c.namespaces, "allowed-namespaces", "", "comma-separated namespaces served (empty: all)")
	fs.IntVar(&c.maxRuns, "max-runs", loadtest.DefaultMaxRuns, "load runs at once")
	fs.Float64Var(&c.maxRate, "max-rate", loadtest.MaxRate, "highest rate (requests per second) a load run may ask for; more is refused with 400")
	fs.DurationVar(&c.maxDuration, "max-duration", loadtest.MaxDuration, "longest duration a load run may ask for; more is refused with 400")
	fs.StringVar(&c.egressAllow, "egress-allow", "", "comma-separated CIDRs, addresses, address:port, host names or host:port that load runs may reach although denied by default (link-local, loopback, unspecified, cloud metadata, the API server)")
	fs.StringVar(&c.egressDeny, "egress-deny", "", "comma-separated destinations load runs may never reach (same forms; wins over -egress-allow)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if !(c.maxRate > 0) || c.maxRate > loadtest.MaxRate {
		return c, fmt.Errorf("-max-rate %v must be in (0, %d]", c.maxRate, loadtest.MaxRate)
	}
	if c.maxDuration <= 0 || c.maxDuration > loadtest.MaxDuration {
		return c, fmt.Errorf("-max-duration %s must be in (0, %s]", c.maxDuration, loadtest.MaxDuration)
	}
	if c.token == "" {
		c.token = os.Getenv("LOADTESTER_TOKEN")
	}
	if c.tokenFile != "" {
		// Read now so that a wrong path fails at start; the server reads
		// it again when it changes.
		token, err := (&webhooks.TokenFile{Path: c.tokenFile}).Token()
		if err != nil {
			return c, fmt.Errorf("-token-file: %w", err)
		}
		c.token = token
	}
	if c.tokenForHooks && c.token == "" {
		return c, errors.New("-token-for-hooks needs a token")
	}
	return c, nil
}

// newHandler builds the loadtester's HTTP handler.
func newHandler(ctx context.Context, c config, log logr.Logger) (http.Handler, *loadtest.Launcher, error) {
	// Load targets are chosen by whoever writes a Rollout: they pass the
	// same egress policy as the manager's webhook calls.
	policy, err := egress.New(cliflag.SplitList(c.egressAllow), cliflag.SplitList(c.egressDeny), apiServerAddrs())
	if err != nil {
		return nil, nil, fmt.Errorf("-egress-allow/-egress-deny: %w", err)
	}
	policy.WithFlags("-egress-allow", "-egress-deny")
	load := &http.Client{Transport: policy.Transport(&http.Transport{MaxIdleConnsPerHost: 64, Proxy: http.ProxyFromEnvironment})}
	launcher := loadtest.NewLauncher(ctx, load, log.WithName("load"))
	launcher.MaxRuns = c.maxRuns
	launcher.MaxRate, launcher.MaxDuration = c.maxRate, c.maxDuration
	var tokenFile *webhooks.TokenFile
	if c.tokenFile != "" {
		tokenFile = &webhooks.TokenFile{Path: c.tokenFile}
	}
	srv, err := webhooks.NewGateServer(webhooks.ServerOptions{
		StateFile:         c.stateFile,
		Token:             c.token,
		TokenFile:         tokenFile,
		TokenForHooks:     c.tokenForHooks,
		AllowedNamespaces: cliflag.SplitList(c.namespaces),
		Log:               log.WithName("gates"),
		Load: func(ctx context.Context, p webhooks.Payload) (int, any) {
			return launcher.Start(ctx, p.Namespace+"/"+p.Name, p.Metadata)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return logRequests(srv, log), launcher, nil
}

// apiServerAddrs is the API server's in-cluster address, from the
// variables the kubelet gives every pod; none outside a cluster.
func apiServerAddrs() []string {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil
	}
	return []string{net.JoinHostPort(host, port)}
}

func logRequests(next http.Handler, log logr.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		if r.URL.Path != "/healthz" {
			log.V(1).Info("request", "method", r.Method, "path", r.URL.Path, "code", rec.code)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func run(args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	zl, err := zap.NewProduction()
	if err != nil {
		return err
	}
	log := zapr.NewLogger(zl)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	h, launcher, err := newHandler(ctx, c, log)
	if err != nil {
		return err
	}
	server := &http.Server{Addr: c.listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- server.ListenAndServe() }()
	log.Info("serving", "listen", c.listen, "stateFile", c.stateFile, "allowedNamespaces", c.namespaces, "token", c.token != "",
		"tokenForHooks", c.tokenForHooks, "maxRuns", c.maxRuns, "maxRate", c.maxRate, "maxDuration", c.maxDuration.String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = server.Shutdown(shutdown)
	launcher.Wait()
	return err
}
