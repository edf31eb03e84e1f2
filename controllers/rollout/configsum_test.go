package rollout

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// lastApplied is the annotation kubectl apply writes: the whole object as
// applied, data included.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// appliedMeta is the metadata of an object written by kubectl apply, whose
// last-applied-configuration holds the given content.
func appliedMeta(content string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: "config", Namespace: "shop",
		Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{
			lastApplied:     `{"apiVersion":"v1","data":{"password":"` + content + `"}}`,
			"team.io/owner": "payments",
		},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
}

func TestTheConfigCacheTransformKeepsNoAnnotationsNorData(t *testing.T) {
	for _, tt := range []struct {
		name string
		// object returns the object as the watch gives it, holding content
		// in its last-applied-configuration (and in its data, if any).
		object func(content string) client.Object
	}{
		{"a Secret's metadata", func(c string) client.Object {
			m := configMetadata(workload.KindSecret)
			m.ObjectMeta = appliedMeta(c)
			return m
		}},
		{"a ConfigMap's metadata", func(c string) client.Object {
			m := configMetadata(workload.KindConfigMap)
			m.ObjectMeta = appliedMeta(c)
			return m
		}},
		// The manager watches metadata only; should a full object reach the
		// cache anyway, it keeps nothing of the data either.
		{"a whole Secret", func(c string) client.Object {
			return &corev1.Secret{ObjectMeta: appliedMeta(c), Data: map[string][]byte{"password": []byte(c)}, StringData: map[string]string{"password": c}}
		}},
		{"a whole ConfigMap", func(c string) client.Object {
			return &corev1.ConfigMap{ObjectMeta: appliedMeta(c), Data: map[string]string{"password": c}, BinaryData: map[string][]byte{"password": []byte(c)}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := StripConfigMetadata(tt.object("hunter2"))
			if err != nil {
				t.Fatal(err)
			}
			o := out.(client.Object)
			raw, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), "hunter2") {
				t.Errorf("the cached object still holds the content: %s", raw)
			}
			if o.GetAnnotations() != nil {
				t.Errorf("annotations = %v, want none", o.GetAnnotations())
			}
			if got := o.GetLabels(); !maps.Equal(got, map[string]string{"app": "web"}) {
				t.Errorf("labels = %v, want them kept", got)
			}
			if o.GetName() != "config" || o.GetNamespace() != "shop" {
				t.Errorf("the name is %s/%s, want it kept", o.GetNamespace(), o.GetName())
			}
			if o.GetManagedFields() != nil {
				t.Errorf("managed fields kept: %v", o.GetManagedFields())
			}
			// client-go may transform an object twice: a streaming list
			// (WatchList) transforms into its temporary store and again
			// into the informer's queue.
			again, err := StripConfigMetadata(o.DeepCopyObject())
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(again, o) {
				t.Errorf("transformed twice: %+v, once: %+v", again, o)
			}
		})
	}
}

func TestTheChecksumsRememberOneVersionPerObjectAndStayBounded(t *testing.T) {
	var c checksums
	c.put("secret/ns/a", "1", "sum-1")
	if sum, ok := c.get("secret/ns/a", "1"); !ok || sum != "sum-1" {
		t.Errorf("get = %q %v, want sum-1", sum, ok)
	}
	c.put("secret/ns/a", "2", "sum-2")
	if _, ok := c.get("secret/ns/a", "1"); ok {
		t.Errorf("an older resourceVersion is still known")
	}
	if _, ok := c.get("secret/ns/a", ""); ok {
		t.Errorf("an empty resourceVersion matched")
	}
	for i := range maxChecksums + 10 {
		c.put(fmt.Sprintf("configmap/ns/%d", i), "1", "sum")
	}
	if n := len(c.entries); n != maxChecksums {
		t.Errorf("%d checksums remembered, want at most %d", n, maxChecksums)
	}
}
