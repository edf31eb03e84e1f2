package test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestEachShardGetsItsOwnManagerAndDisruptionBudget: with shards, the first
// manager serves the Rollouts of no shard and each shard's manager those
// labelled with its name; each has a PodDisruptionBudget that covers its
// own pods only, so a drain keeps one manager of every shard.
func TestEachShardGetsItsOwnManagerAndDisruptionBudget(t *testing.T) {
	if args := container(render(t, "").manager()).Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--shard") }) {
		t.Errorf("without shards the manager got a --shard flag: %v", args)
	}

	r := render(t, "replicas: 2\nshards: [team-a]")
	main, shard := &appsv1.Deployment{}, &appsv1.Deployment{}
	r.into("Deployment", "-manager", main)
	r.into("Deployment", "-manager-team-a", shard)
	expectArgs(t, container(main).Args, "--shard=!sluice.dev/shard")
	expectArgs(t, container(shard).Args, "--shard=sluice.dev/shard=team-a", "--leader-elect")
	if *shard.Spec.Replicas != 2 {
		t.Errorf("the shard runs %d replicas, want replicas (2)", *shard.Spec.Replicas)
	}
	mainPods, shardPods := labels.Set(main.Spec.Template.Labels), labels.Set(shard.Spec.Template.Labels)
	shardSel, err := metav1.LabelSelectorAsSelector(shard.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !shardSel.Matches(shardPods) || shardSel.Matches(mainPods) {
		t.Errorf("the shard's Deployment selects %v: want its own pods (%v), not the first manager's (%v)", shard.Spec.Selector, shardPods, mainPods)
	}

	for _, tc := range []struct {
		suffix      string
		want, other labels.Set
	}{{"-manager", mainPods, shardPods}, {"-manager-team-a", shardPods, mainPods}} {
		pdb := &policyv1.PodDisruptionBudget{}
		r.into("PodDisruptionBudget", tc.suffix, pdb)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(tc.want) || sel.Matches(tc.other) {
			t.Errorf("PodDisruptionBudget *%s selects %v: want the pods %v only, not %v", tc.suffix, pdb.Spec.Selector, tc.want, tc.other)
		}
	}
}
