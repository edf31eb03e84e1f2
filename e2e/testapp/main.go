// Command testapp is the backend of the e2e cluster's pods: the harness runs
// one per ready pod, in the pod's network namespace at the pod's IP. It
// answers every request with its version (body and X-Version header), fails
// a share of them with 500 and delays them, as the pod template's env says:
//
//	VERSION      version string echoed back (default "unknown")
//	ERROR_RATE   share of requests answered 500, 0..1 (default 0)
//	LATENCY      added delay per request, a Go duration (default 0)
//	MESSAGE      optional text echoed back (for config-only changes)
//	MESSAGE_FILE a file whose content is echoed back instead, read at each
//	             request (a mounted ConfigMap, which the kubelet refreshes)
//	NOT_READY    "true": /healthz answers 503 (a readiness probe fails)
//	READY_FOR    a Go duration: /healthz answers 503 once the app has run
//	             that long (a version that fails after it became ready)
//	CPU_PER_REQUEST  CPU burnt per request, a Go duration (drives an HPA)
//
// It also serves gRPC (cleartext HTTP/2) on -grpc-listen: the unary method
// /sluice.e2e.Version/Get takes a google.protobuf.Empty and answers a
// google.protobuf.StringValue with the version, with the same errors
// (status Internal), delay and CPU, for the GRPCRoute stories.
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve HTTP on")
	grpcListen := flag.String("grpc-listen", ":9090", "address to serve gRPC on (empty: none)")
	flag.Parse()

	version := envOr("VERSION", "unknown")
	message := os.Getenv("MESSAGE")
	messageFile := os.Getenv("MESSAGE_FILE")
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
	readyFor, err := time.ParseDuration(envOr("READY_FOR", "0s"))
	if err != nil {
		log.Fatalf("READY_FOR: %v", err)
	}
	started := time.Now()

	// Deterministic error spacing: every request whose running share of
	// errors is below ERROR_RATE fails, so 0.5 fails exactly every other one.
	var served, failed atomic.Int64
	// serve does what every request does and says whether it fails.
	serve := func() (fail bool) {
		if burn > 0 {
			spin(burn)
		}
		if latency > 0 {
			time.Sleep(latency + time.Duration(rand.Int64N(int64(latency)/10+1)))
		}
		n := served.Add(1)
		if errorRate > 0 && float64(failed.Load()) < errorRate*float64(n) {
			failed.Add(1)
			return true
		}
		return false
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if notReady {
			http.Error(w, "not ready (NOT_READY=true)", http.StatusServiceUnavailable)
			return
		}
		if readyFor > 0 && time.Since(started) > readyFor {
			http.Error(w, "not ready (READY_FOR="+readyFor.String()+" is over)", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fail := serve()
		w.Header().Set("X-Version", version)
		message := message
		if messageFile != "" {
			b, err := os.ReadFile(messageFile)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			message = strings.TrimSpace(string(b))
		}
		w.Header().Set("X-Message", message)
		if fail {
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
	if *grpcListen != "" {
		gs := grpc.NewServer()
		gs.RegisterService(&versionService, versionServer{version: version, serve: serve})
		ln, err := net.Listen("tcp", *grpcListen)
		if err != nil {
			log.Fatal(err)
		}
		go func() { _ = gs.Serve(ln) }()
		go func() { <-ctx.Done(); gs.GracefulStop() }()
	}
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// versionServer answers VersionMethod; the service is described by hand
// (no generated code): one unary method on well-known message types.
type versionServer struct {
	version string
	serve   func() bool
}

// versionAPI is the interface grpc checks the implementation against.
type versionAPI interface {
	get(context.Context) (*wrapperspb.StringValue, error)
}

func (v versionServer) get(ctx context.Context) (*wrapperspb.StringValue, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-version", v.version))
	if v.serve() {
		return nil, status.Errorf(codes.Internal, "version=%s error", v.version)
	}
	return wrapperspb.String(v.version), nil
}

var versionService = grpc.ServiceDesc{
	ServiceName: "sluice.e2e.Version",
	HandlerType: (*versionAPI)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Get",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(&emptypb.Empty{}); err != nil {
				return nil, err
			}
			return srv.(versionAPI).get(ctx)
		},
	}},
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
