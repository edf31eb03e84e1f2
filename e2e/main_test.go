//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/e2e/cluster"
)

// env is the cluster every story shares; each story works in a namespace
// of its own and a host name of its own on the shared Gateway.
var env *cluster.Cluster

// Every story runs in its own namespace with its own host on the shared
// Gateway, and the stories that kill, stop or upgrade managers do it to a
// Sluice of their own (Story.InstallOwnSluice), so the stories run side by
// side (make e2e passes -parallel; see the Makefile for the number).

// NewStory starts a story on the package's cluster.
func NewStory(t *testing.T, name string) *Story { t.Helper(); return NewStoryOn(t, env, name) }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Progress: os.Stderr, RealNode: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the e2e cluster:", err)
		return 1
	}
	env = c
	// Ctrl-C or a kill of the test binary still tears the cluster down
	// (a SIGKILL cannot be caught: the next run sweeps the leftovers).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "[cluster] interrupted: tearing down")
		c.Stop()
		os.Exit(130)
	}()
	fmt.Fprintf(os.Stderr, "[cluster] up in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), c.Dir)
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "[cluster] component logs are in %s\n", c.Dir)
	}
	c.Stop()
	if code == 0 && os.Getenv("SLUICE_E2E_KEEP_LOGS") == "" {
		_ = os.RemoveAll(c.Dir)
	}
	return code
}
