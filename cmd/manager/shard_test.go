package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestEachShardDrivesOnlyItsRollouts: two managers on one API server, one
// with --shard sluice.dev/shard=a and one with --shard !sluice.dev/shard,
// each elect their own leader and each Rollout is driven by exactly one of
// them: with the shard's manager stopped, its new Rollout waits untouched
// (the other manager does not take it), and is driven once it is back.
func TestEachShardDrivesOnlyItsRollouts(t *testing.T) {
	env, c := startEnv(t)
	kubeconfig := kubeConfigFor(t, env, "sluice-test-admin", "system:masters")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	testenv.RunFakeKubelet(ctx, c, "default", nil)

	shardA := "sluice.dev/shard=a"
	rest := "!sluice.dev/shard"
	a := startReplica(t, kubeconfig, "--leader-election-namespace", "default", "--shard", shardA)
	startReplica(t, kubeconfig, "--leader-election-namespace", "default", "--shard", rest)

	sharded := func(name, shard string) *sluicev1.Rollout {
		ro := blueGreen(name)
		if shard != "" {
			ro.Labels = map[string]string{manager.ShardLabel: shard}
		}
		return ro
	}
	for _, ro := range []*sluicev1.Rollout{sharded("alpha", "a"), sharded("plain", "")} {
		must(t, c.Create(ctx, deployment(ro.Name)))
		must(t, c.Create(ctx, ro))
	}
	waitForPhase(t, c, "alpha", sluicev1.PhaseInitialized)
	waitForPhase(t, c, "plain", sluicev1.PhaseInitialized)

	// One Lease per shard, each held.
	for _, sel := range []string{shardA, rest} {
		parsed, err := labels.Parse(sel)
		must(t, err)
		name := manager.LeaseName(parsed)
		waitFor(t, 30*time.Second, "the Lease of shard "+sel+" to be held", func() error {
			lease := &coordinationv1.Lease{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, lease); err != nil {
				return err
			}
			if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
				return fmt.Errorf("Lease %s has no holder", name)
			}
			return nil
		})
	}
	if manager.LeaseName(nil) == manager.LeaseName(labels.SelectorFromSet(labels.Set{manager.ShardLabel: "a"})) {
		t.Fatal("a shard shares the Lease of the unsharded manager")
	}

	// With shard a's manager stopped, its new Rollout is not driven by the
	// other manager, which keeps serving its own.
	if err := a.stop(); err != nil {
		t.Fatalf("shard a's manager exited with %v", err)
	}
	for _, ro := range []*sluicev1.Rollout{sharded("beta", "a"), sharded("gamma", "")} {
		must(t, c.Create(ctx, deployment(ro.Name)))
		must(t, c.Create(ctx, ro))
	}
	waitForPhase(t, c, "gamma", sluicev1.PhaseInitialized)
	beta := &sluicev1.Rollout{}
	must(t, c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "beta"}, beta))
	if beta.Status.Phase != "" || len(beta.Finalizers) != 0 {
		t.Fatalf("shard a's Rollout was driven while its manager was stopped: phase %q, finalizers %v", beta.Status.Phase, beta.Finalizers)
	}

	startReplica(t, kubeconfig, "--leader-election-namespace", "default", "--shard", shardA)
	waitForPhase(t, c, "beta", sluicev1.PhaseInitialized)
}

func TestABadShardSelectorIsRejectedClearly(t *testing.T) {
	kc := unreachableKubeconfig(t, "https://127.0.0.1:6443")
	err := run(context.Background(), []string{"--leader-elect=false", "--kubeconfig", kc, "--shard", "a in (b"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--shard") {
		t.Fatalf("run with a bad --shard returned %v; want an error naming --shard", err)
	}
}
