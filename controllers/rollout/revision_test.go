package rollout

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

func TestTheConfigCacheTransformKeepsNoDataOnlyTheChecksumAndTheLabels(t *testing.T) {
	for _, tt := range []struct {
		name string
		// object returns the object as the API server gives it, holding
		// content in its data and in its last-applied-configuration.
		object func(content string) client.Object
	}{
		{"a Secret's data", func(c string) client.Object {
			return &corev1.Secret{ObjectMeta: appliedMeta(c), Data: map[string][]byte{"password": []byte(c)}}
		}},
		{"a Secret's stringData", func(c string) client.Object {
			return &corev1.Secret{ObjectMeta: appliedMeta(c), StringData: map[string]string{"password": c}}
		}},
		{"a ConfigMap's data", func(c string) client.Object {
			return &corev1.ConfigMap{ObjectMeta: appliedMeta(c), Data: map[string]string{"password": c}}
		}},
		{"a ConfigMap's binaryData", func(c string) client.Object {
			return &corev1.ConfigMap{ObjectMeta: appliedMeta(c), BinaryData: map[string][]byte{"password": []byte(c)}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			strip := func(content string) client.Object {
				t.Helper()
				out, err := StripConfigData(tt.object(content))
				if err != nil {
					t.Fatal(err)
				}
				return out.(client.Object)
			}
			one, other := strip("hunter2-one"), strip("hunter2-other")

			raw, err := json.Marshal(one)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), "hunter2") {
				t.Errorf("the cached object still holds the content: %s", raw)
			}
			sum := one.GetAnnotations()[ChecksumAnnotation]
			if want := map[string]string{ChecksumAnnotation: sum}; sum == "" || !maps.Equal(one.GetAnnotations(), want) {
				t.Errorf("annotations = %v, want only the checksum annotation", one.GetAnnotations())
			}
			if sum == other.GetAnnotations()[ChecksumAnnotation] {
				t.Errorf("the checksum %q does not change when the data does", sum)
			}
			if got := one.GetLabels(); !maps.Equal(got, map[string]string{"app": "web"}) {
				t.Errorf("labels = %v, want them kept", got)
			}
			if one.GetManagedFields() != nil {
				t.Errorf("managed fields kept: %v", one.GetManagedFields())
			}
		})
	}
}
