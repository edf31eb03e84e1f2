package intern

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fresh returns a copy of s in memory of its own, as a decoder makes one.
func fresh(s string) string { return strings.Clone(s) }

func sameMemory(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// service builds a Service as the API server's decoder hands it to the
// cache: every string a copy of its own.
func service(name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Name: fresh(name), Namespace: fresh("shop"), UID: types.UID("uid-" + name),
		Labels:          map[string]string{fresh("app.kubernetes.io/managed-by"): fresh("sluice"), fresh("sluice.dev/rollout"): fresh("web")},
		Annotations:     map[string]string{fresh("sluice.dev/route"): fresh("{\"weights\":[90,10]}")},
		Finalizers:      []string{fresh("sluice.dev/finalizer")},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: fresh("sluice.dev/v1alpha1"), Kind: fresh("Rollout"), Name: fresh("web")}},
	}}
}

func TestObjectsShareTheStringsTheyRepeat(t *testing.T) {
	a, b := service("web-primary"), service("web-canary")
	want := a.DeepCopy()
	out, err := Transform(nil)(a)
	if err != nil || out != a {
		t.Fatalf("Transform = %v, %v; want the object itself", out, err)
	}
	Meta(b)
	if !equality(a, want) {
		t.Fatalf("sharing changed the object:\n got %+v\nwant %+v", a.ObjectMeta, want.ObjectMeta)
	}
	shared := func(what string, x, y string) {
		t.Helper()
		if x != y || !sameMemory(x, y) {
			t.Errorf("%s: %q and %q are not one copy", what, x, y)
		}
	}
	shared("namespace", a.Namespace, b.Namespace)
	for k := range a.Labels {
		for k2 := range b.Labels {
			if k == k2 {
				shared("label key", k, k2)
				shared("label value", a.Labels[k], b.Labels[k2])
			}
		}
	}
	for k := range a.Annotations {
		for k2 := range b.Annotations {
			shared("annotation key", k, k2)
		}
	}
	shared("finalizer", a.Finalizers[0], b.Finalizers[0])
	shared("owner API version", a.OwnerReferences[0].APIVersion, b.OwnerReferences[0].APIVersion)
	shared("owner kind", a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind)
	// Annotation values are often long and each object's own: not shared.
	if sameMemory(a.Annotations["sluice.dev/route"], b.Annotations["sluice.dev/route"]) {
		t.Error("annotation values were shared; only their keys should be")
	}
	// What is each object's own stays out of the table.
	for _, s := range []string{a.Name, b.Name, a.OwnerReferences[0].Name} {
		if _, ok := table.m[s]; ok && s != "web" {
			t.Errorf("the table holds the name %q", s)
		}
	}
}

func equality(a, b *corev1.Service) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.UID == b.UID &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		fmt.Sprint(a.Finalizers) == fmt.Sprint(b.Finalizers) && fmt.Sprint(a.OwnerReferences) == fmt.Sprint(b.OwnerReferences)
}

func TestTheTableStaysBounded(t *testing.T) {
	var kept []string
	for i := range 3 * maxEntries {
		s := String(fmt.Sprintf("tenant-label-%d", i))
		if i%1000 == 0 {
			kept = append(kept, s)
		}
	}
	if n := len(table.m); n > maxEntries {
		t.Errorf("the table holds %d strings, more than its bound of %d", n, maxEntries)
	}
	// Strings handed out before a reset are intact.
	for j, s := range kept {
		if want := fmt.Sprintf("tenant-label-%d", j*1000); s != want {
			t.Errorf("a string handed out earlier reads %q, want %q", s, want)
		}
	}
}

func TestTransformPassesErrorsAndOtherValuesThrough(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Transform(func(o any) (any, error) { return o, boom })(service("x")); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the inner transform's", err)
	}
	if out, err := Transform(nil)("not an object"); out != "not an object" || err != nil {
		t.Errorf("a non-object came out as %v, %v", out, err)
	}
	if m := Map(nil); m != nil {
		t.Errorf("Map(nil) = %v", m)
	}
}

func TestSharingIsSafeFromManyGoroutines(t *testing.T) {
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				Meta(service(fmt.Sprintf("svc-%d-%d", g, i)))
			}
		}()
	}
	for range 4 {
		<-done
	}
}
