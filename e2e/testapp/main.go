// Command testapp is the backend of the e2e cluster's pods: the harness runs
// one per ready pod, in the pod's network namespace at the pod's IP. It
// answers every request with its version (body and X-Version header), fails
// a share of them with 500 and delays them, as the pod template's env says:
//
//	VERSION      version string echoed back (default "unknown")
//	ERROR_RATE   share of requests answered 500, 0..1 (default 0)
//	LATENCY      added delay per request, a Go duration (default 0)
//	MESSAGE      optional text echoed back (for config-only changes)
//	NOT_READY    "true": /healthz answers 503 (a readiness probe fails)
//	CPU_PER_REQUEST  CPU burnt per request, a Go duration (drives an HPA)
//
// On the real node it runs as a container (image localhost/sluice-testapp);
// on the kwok cluster the harness runs it as a process per pod.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	flag.Parse()

	version := envOr("VERSION", "unknown")
	message := os.Getenv("MESSAGE")
	errorRate, err := strconv.ParseFloat(envOr("ERROR_RATE", "0"), 64)
	if err != nil || errorRate < 0 || errorRate > 1 {
		log.Fatalf("ERROR_RATE %q: want a number in [0, 1]", os.Getenv("ERROR_RATE"))
	}
	latency, err := time.ParseDuration(envOr("LATENCY", "0s"))
	if err != nil {
		log.Fatalf("LATENCY: %v", err)
	}
	burn, err := time.ParseDuration(envOr("CPU_PER_REQUEST", "0s"))
	if err != nil {
		log.Fatalf("CPU_PER_REQUEST: %v", err)
	}
	notReady := os.Getenv("NOT_READY") == "true"

	// Deterministic error spacing: every request whose running share of
	// errors is below ERROR_RATE fails, so 0.5 fails exactly every other one.
	var served, failed atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if notReady {
			http.Error(w, "not ready (NOT_READY=true)", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		if burn > 0 {
			spin(burn)
		}
		if latency > 0 {
			time.Sleep(latency + time.Duration(rand.Int64N(int64(latency)/10+1)))
		}
		n := served.Add(1)
		w.Header().Set("X-Version", version)
		w.Header().Set("X-Message", message)
		if errorRate > 0 && float64(failed.Load()) < errorRate*float64(n) {
			failed.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = fmt.Fprintf(w, "version=%s error\n", version)
			return
		}
		_, _ = fmt.Fprintf(w, "version=%s message=%s\n", version, message)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// spin keeps a core busy for d (wall time), so CPU use follows the load.
func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 0
	for time.Now().Before(end) {
		for i := 0; i < 1000; i++ {
			x += i
		}
	}
	_ = x
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
