//go:build e2e

package node

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/e2e"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// env is the real-node cluster every story shares.
var env *cluster.Cluster

// NewStory starts a story on the real node.
func NewStory(t *testing.T, name string) *e2e.Story { t.Helper(); return e2e.NewStoryOn(t, env, name) }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Progress: os.Stderr, RealNode: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the real-node cluster:", err)
		return 1
	}
	env = c
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "[cluster] interrupted: tearing down")
		c.Stop()
		os.Exit(130)
	}()
	fmt.Fprintf(os.Stderr, "[cluster] real node up in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), c.Dir)
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
