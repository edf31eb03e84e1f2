package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RevisionAnnotation on the primary Deployment records the revision it runs.
const RevisionAnnotation = "sluice.dev/revision"

// configKind is the kind of a configuration object a pod template uses.
type configKind string

const (
	kindConfigMap configKind = "configmap"
	kindSecret    configKind = "secret"
)

// configRef is a ConfigMap or Secret a pod template uses.
type configRef struct {
	Kind     configKind
	Name     string
	Optional bool
}

func (r configRef) key() string { return string(r.Kind) + "/" + r.Name }

// configRefs lists the ConfigMaps and Secrets a pod template uses, through
// volumes, projected volumes, env and envFrom, without duplicates.
func configRefs(spec *corev1.PodSpec) []configRef {
	seen := map[string]int{}
	var refs []configRef
	add := func(kind configKind, name string, optional *bool) {
		if name == "" {
			return
		}
		r := configRef{Kind: kind, Name: name, Optional: optional != nil && *optional}
		if i, ok := seen[r.key()]; ok {
			// Required anywhere means required.
			refs[i].Optional = refs[i].Optional && r.Optional
			return
		}
		seen[r.key()] = len(refs)
		refs = append(refs, r)
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add(kindConfigMap, v.ConfigMap.Name, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			add(kindSecret, v.Secret.SecretName, v.Secret.Optional)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(kindConfigMap, s.ConfigMap.Name, s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					add(kindSecret, s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	for _, c := range allContainers(spec) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add(kindConfigMap, e.ConfigMapRef.Name, e.ConfigMapRef.Optional)
			}
			if e.SecretRef != nil {
				add(kindSecret, e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if k := e.ValueFrom.ConfigMapKeyRef; k != nil {
				add(kindConfigMap, k.Name, k.Optional)
			}
			if k := e.ValueFrom.SecretKeyRef; k != nil {
				add(kindSecret, k.Name, k.Optional)
			}
		}
	}
	return refs
}

// allContainers returns pointers to the init and regular containers.
func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// revision identifies what a release would ship: the pod template and the
// checksums of the configuration it uses.
func revision(template *corev1.PodTemplateSpec, configs map[string]string) (string, error) {
	h := sha256.New()
	if _, stamped := template.Annotations[ConfigStampAnnotation]; stamped {
		// Sluice's own stamp is not part of what the user ships.
		template = template.DeepCopy()
		delete(template.Annotations, ConfigStampAnnotation)
		if len(template.Annotations) == 0 {
			template.Annotations = nil
		}
	}
	if err := json.NewEncoder(h).Encode(template); err != nil {
		return "", fmt.Errorf("hashing the pod template: %w", err)
	}
	keys := make([]string, 0, len(configs))
	for k := range configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, configs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:10], nil
}

// dataChecksum hashes the content of a ConfigMap or Secret.
func dataChecksum(obj client.Object) string {
	h := sha256.New()
	write := func(k string, v []byte) { _, _ = fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(v)); h.Write(v) }
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		for _, k := range sortedKeys(o.Data) {
			write(k, []byte(o.Data[k]))
		}
		for _, k := range sortedKeys(o.BinaryData) {
			write("binary:"+k, o.BinaryData[k])
		}
	case *corev1.Secret:
		for _, k := range sortedKeys(o.Data) {
			write(k, o.Data[k])
		}
		for _, k := range sortedKeys(o.StringData) {
			write(k, []byte(o.StringData[k]))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
