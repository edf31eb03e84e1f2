package rollout

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestACachedCopyOlderThanOurOwnWriteIsBehindUntilTheCacheCatchesUp(t *testing.T) {
	o := newOwnWrites()
	key := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	if o.isBehind(key, "10") {
		t.Fatal("a Rollout never written is behind")
	}
	// One reconcile: the finalizer (10 → 11), the status (11 → 12).
	o.wrote(key, "10", "11")
	o.wrote(key, "11", "12")
	for _, rv := range []string{"10", "11"} {
		if !o.isBehind(key, rv) {
			t.Errorf("the copy at %s, left behind by our writes, is not behind", rv)
		}
	}
	if o.isBehind(key, "12") {
		t.Error("the copy of our last write is behind")
	}
	if !o.hasAll(key, "12") {
		t.Error("the copy of our last write does not hold all our writes")
	}
	if o.hasAll(key, "13") {
		t.Error("a copy someone else wrote after ours is taken for ours")
	}
	// Caught up: the old versions are forgotten.
	if o.isBehind(key, "11") {
		t.Error("after the cache caught up, an old version is still behind")
	}
	// A write that changed nothing leaves nothing behind.
	o.wrote(key, "12", "12")
	if o.isBehind(key, "12") {
		t.Error("a no-op write put the current copy behind")
	}
	other := types.NamespacedName{Namespace: "shop", Name: "other"}
	o.wrote(other, "5", "6")
	o.forget(other)
	if o.isBehind(other, "5") || o.hasAll(other, "6") {
		t.Error("a forgotten Rollout is still known")
	}
}
