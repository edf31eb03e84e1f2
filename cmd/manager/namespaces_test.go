package main

import (
	"context"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluice-dev/sluice/internal/manager"
)

func TestWatchNamespacesTakesCommaSeparatedNamesAndRepeats(t *testing.T) {
	var list []string
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("watch-namespaces", "", namespaceList(&list))
	must(t, fs.Parse([]string{"--watch-namespaces", "team-a, team-b,", "--watch-namespaces=team-c"}))
	if want := []string{"team-a", "team-b", "team-c"}; !slices.Equal(list, want) {
		t.Errorf("namespaces = %q, want %q", list, want)
	}
}

func TestAnInvalidWatchNamespaceIsRejectedClearly(t *testing.T) {
	for _, bad := range []string{"Team_A", "team-a/rollouts", strings.Repeat("a", 64)} {
		t.Run(bad, func(t *testing.T) {
			// Rejected while the flags are parsed: no kubeconfig is needed.
			err := run(context.Background(), []string{"--leader-elect=false", "--watch-namespaces", "team-a," + bad}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "watch-namespaces") || !strings.Contains(err.Error(), "is not a namespace name") {
				t.Errorf("run with --watch-namespaces team-a,%s = %v, want an error naming the flag and the entry", bad, err)
			}
		})
	}
}

func TestEachSetOfWatchedNamespacesElectsItsOwnLeader(t *testing.T) {
	all, tenant := manager.LeaseName(nil), manager.LeaseName(nil, "team-a")
	if all != manager.LeaderElectionID {
		t.Errorf("the Lease of a manager of every namespace = %s, want %s (unchanged)", all, manager.LeaderElectionID)
	}
	if tenant == all || tenant == manager.LeaseName(nil, "team-b") {
		t.Errorf("tenants' managers share a Lease (%s): installed in one namespace, one would never lead", tenant)
	}
	if manager.LeaseName(nil, "team-b", "team-a") != manager.LeaseName(nil, "team-a", "team-b", "team-a") {
		t.Error("the same namespaces in another order name another Lease")
	}
	shard := labels.SelectorFromSet(labels.Set{manager.ShardLabel: "a"})
	if manager.LeaseName(shard, "team-a") == manager.LeaseName(shard) || manager.LeaseName(shard, "team-a") == tenant {
		t.Error("a shard of a tenant's manager shares a Lease with the shard or the tenant")
	}
}
