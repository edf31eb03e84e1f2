package rollout

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// The manager watches ConfigMaps and Secrets as metadata only, so that their
// data never reaches it over the watch nor sits in its cache. The content
// checksum that a revision needs is read uncached, from the objects a target
// uses and only when their resourceVersion (from the watch) is one whose
// checksum is not known yet: once per change, and once per object after a
// restart. The checksums are remembered here, not in the Rollout's status:
// the status keeps the checksums themselves (trackedConfigs), which is all a
// restarted manager needs to resume; it re-reads each used object once.

// maxChecksums bounds the checksums remembered: one per ConfigMap or Secret
// that a target uses (or that Sluice copied for a primary), the latest only.
// Past it, an arbitrary one is forgotten and read again when next needed.
const maxChecksums = 10000

// checksums remembers the content checksum of ConfigMaps and Secrets by
// object and resourceVersion. The zero value is ready to use.
type checksums struct {
	mu      sync.Mutex
	entries map[string]checksumEntry
}

type checksumEntry struct{ resourceVersion, sum string }

// checksumKey names an object in checksums.
func checksumKey(kind workload.ConfigKind, key client.ObjectKey) string {
	return string(kind) + "/" + key.Namespace + "/" + key.Name
}

// get returns the checksum of the object at resourceVersion rv, if known.
func (c *checksums) get(key, rv string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || rv == "" || e.resourceVersion != rv {
		return "", false
	}
	return e.sum, true
}

// put records the checksum of the object at resourceVersion rv, replacing
// what was known of its other versions.
func (c *checksums) put(key, rv, sum string) {
	if rv == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]checksumEntry{}
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= maxChecksums {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = checksumEntry{resourceVersion: rv, sum: sum}
}

// configMetadata is the metadata-only object that the cache holds for a
// ConfigMap or Secret. Reading the typed object through the cached client
// would start a second, full informer of every ConfigMap or Secret.
func configMetadata(kind workload.ConfigKind) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	if kind == workload.KindSecret {
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	} else {
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	}
	return m
}

// configChecksum returns the content checksum of a ConfigMap or Secret whose
// cached metadata is meta (inPlaceChecksum for a service account token):
// remembered for its resourceVersion, else read through the API reader (a
// NotFound error when it was deleted meanwhile); then it returns the object
// read too, nil otherwise.
func (r *Reconciler) configChecksum(ctx context.Context, kind workload.ConfigKind, meta *metav1.PartialObjectMetadata) (string, client.Object, error) {
	key := client.ObjectKeyFromObject(meta)
	if sum, ok := r.sums.get(checksumKey(kind, key), meta.ResourceVersion); ok {
		return sum, nil, nil
	}
	obj := newConfigObject(kind)
	if err := r.APIReader.Get(ctx, key, obj); err != nil {
		return "", nil, err
	}
	sum := workload.DataChecksum(obj)
	if sec, ok := obj.(*corev1.Secret); ok && sec.Type == corev1.SecretTypeServiceAccountToken {
		// A Secret's type never changes: remembered by resourceVersion
		// like a checksum.
		sum = inPlaceChecksum
	}
	r.sums.put(checksumKey(kind, key), obj.GetResourceVersion(), sum)
	return sum, obj, nil
}

// StripConfigMetadata is the cache transform for ConfigMaps and Secrets,
// which the manager watches as metadata only: it keeps the name, namespace,
// UID, resourceVersion, labels and owners, and drops the annotations and
// managed fields. A metadata-only watch still carries the annotations, and
// kubectl's last-applied-configuration holds the whole object, data included;
// nothing in Sluice reads a ConfigMap's or Secret's annotations. Should a
// full object ever reach the cache, its data goes too.
func StripConfigMetadata(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	o.SetAnnotations(nil)
	o.SetManagedFields(nil)
	switch c := o.(type) {
	case *corev1.ConfigMap:
		c.Data, c.BinaryData = nil, nil
	case *corev1.Secret:
		c.Data, c.StringData = nil, nil
	}
	return o, nil
}
