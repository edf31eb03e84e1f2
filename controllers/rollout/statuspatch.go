package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// statusPatch is the JSON merge patch of a Rollout's status from base's,
// locked to the resourceVersion of the Rollout it is applied with: the API
// server refuses it with 409 Conflict when that copy was stale.
//
// client.MergeFrom encodes both whole Rollouts and diffs them; the status
// subresource ignores everything but the status, so only the status is
// encoded and diffed. That was 9 % of the manager's CPU with 1,000
// releases at once (docs/performance.md).
type statusPatch struct{ base *sluicev1.RolloutStatus }

func (statusPatch) Type() types.PatchType { return types.MergePatchType }

func (p statusPatch) Data(obj client.Object) ([]byte, error) {
	ro, ok := obj.(*sluicev1.Rollout)
	if !ok {
		return nil, fmt.Errorf("a status patch of a %T", obj)
	}
	from, err := json.Marshal(p.base)
	if err != nil {
		return nil, err
	}
	to, err := json.Marshal(&ro.Status)
	if err != nil {
		return nil, err
	}
	diff, err := mergePatch(from, to)
	if err != nil {
		return nil, err
	}
	type lock struct {
		ResourceVersion string `json:"resourceVersion"`
	}
	return json.Marshal(struct {
		Metadata lock            `json:"metadata"`
		Status   json.RawMessage `json:"status"`
	}{lock{ro.ResourceVersion}, diff})
}

// patchStatus writes ro's status as a statusPatch from base and takes the
// Rollout's new resourceVersion from the answer; ro keeps the status it
// sent. The answer is asked for as metadata only: decoding the whole
// Rollout the API server sends back (managed fields and all, as JSON) after
// every status write was 5 % of the manager's CPU releasing 100 Rollouts
// at once, and the status in it is the one sent (the lock guarantees it
// was applied to base), its times cut to the second.
//
// It goes through RolloutMetadata when set: controller-runtime's metadata
// client looks the Rollout's REST mapping up again for every request (4 %
// of the manager's allocations with 1,000 releases at once).
func (r *Reconciler) patchStatus(ctx context.Context, ro *sluicev1.Rollout, base *sluicev1.RolloutStatus) error {
	data, err := statusPatch{base: base}.Data(ro)
	if err != nil {
		return err
	}
	if r.RolloutMetadata != nil {
		answer, err := r.RolloutMetadata.Namespace(ro.Namespace).Patch(ctx, ro.Name, types.MergePatchType, data, metav1.PatchOptions{}, "status")
		if err != nil {
			return err
		}
		ro.ResourceVersion = answer.ResourceVersion
		return nil
	}
	answer := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: ro.Name}}
	answer.SetGroupVersionKind(sluicev1.GroupVersion.WithKind("Rollout"))
	if err := r.Status().Patch(ctx, answer, client.RawPatch(types.MergePatchType, data)); err != nil {
		return err
	}
	ro.ResourceVersion = answer.ResourceVersion
	return nil
}

// mergePatch is the JSON merge patch (RFC 7386) that turns the object from
// into to, both as encoding/json writes one Go type (so that equal values
// are equal bytes): the members of to that differ, a null for each member
// that to lacks, and for an object in both, the merge patch of the two.
// Arrays are replaced whole, as RFC 7386 has it.
//
// A general diff (evanphx/json-patch's CreateMergePatch) decodes both
// documents whole into maps of interfaces: 5 % of the manager's CPU with
// 1,000 releases at once, for statuses of which a write changes a few
// fields. Here each level is split into raw members, and only the members
// that differ are looked into.
func mergePatch(from, to []byte) (json.RawMessage, error) {
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal(from, &a); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(to, &b); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(b))
	for k, bv := range b {
		av, ok := a[k]
		switch {
		case ok && bytes.Equal(av, bv):
			continue
		case ok && isObject(av) && isObject(bv):
			sub, err := mergePatch(av, bv)
			if err != nil {
				return nil, err
			}
			out[k] = sub
		default:
			out[k] = bv
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out[k] = json.RawMessage("null")
		}
	}
	return json.Marshal(out)
}

// isObject reports whether a JSON value, as encoding/json writes it, is an
// object.
func isObject(v json.RawMessage) bool { return len(v) > 0 && v[0] == '{' }
