package autoscaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Target is the Rollout an autoscaler is handled for.
type Target struct {
	Rollout *sluicev1.Rollout
	// Deployment is the target Deployment, Primary the primary Deployment.
	Deployment, Primary string
	// Labels go on the primary's copy, as on Sluice's other objects.
	Labels map[string]string
}

// State is what Observe read.
type State struct {
	// User is the user's autoscaler and Source what Sluice read of it.
	User   client.Object
	Source Source
	// Copy is the primary's copy; nil when it does not exist yet.
	Copy client.Object
	// Paused is true while the user's autoscaler carries the kind's pause
	// annotation with Sluice's value.
	Paused bool
}

// Release asks Sync to build the copy from the user's current spec, for
// the primary's promotion to Revision; the copy keeps the source it had for
// the Stable revision until the next release, for Restore.
type Release struct {
	Revision, Stable string
}

// Set holds the kinds Sluice handles.
type Set struct {
	client client.Client
	reader client.Reader
	mapper meta.RESTMapper
	kinds  []Kind
}

// New returns the kinds' autoscalers. c writes; reader reads the user's
// autoscalers and the copies (the manager's cache, which also holds
// unstructured kinds); mapper tells whether a kind's CRD is installed.
func New(c client.Client, reader client.Reader, mapper meta.RESTMapper, kinds ...Kind) *Set {
	return &Set{client: c, reader: reader, mapper: mapper, kinds: kinds}
}

// For returns the Autoscaler of a Rollout's autoscalerRef, or a
// *StalledError when its kind is not served by the API server.
func (s *Set) For(ref *sluicev1.AutoscalerRef) (*Autoscaler, error) {
	for _, k := range s.kinds {
		gvk := k.GroupVersionKind()
		if k.Kind() != ref.Kind || gvk.GroupVersion().String() != ref.APIVersion {
			continue
		}
		if k.CRD() != "" {
			_, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if meta.IsNoMatchError(err) {
				return nil, &StalledError{Reason: ReasonUnavailable, Message: fmt.Sprintf(
					"autoscalerRef names a %s (%s), whose CRD %s is not installed in this cluster: install it, or remove autoscalerRef", ref.Kind, ref.APIVersion, k.CRD())}
			}
			if err != nil {
				return nil, fmt.Errorf("checking for the CRD %s: %w", k.CRD(), err)
			}
		}
		return &Autoscaler{Kind: k, client: s.client, reader: s.reader}, nil
	}
	return nil, &StalledError{Reason: ReasonInvalid, Message: fmt.Sprintf("autoscalerRef: Sluice does not handle %s %s", ref.APIVersion, ref.Kind)}
}

// IsCRD reports whether a CRD serves one of the kinds.
func (s *Set) IsCRD(name string) bool {
	for _, k := range s.kinds {
		if k.CRD() != "" && k.CRD() == name {
			return true
		}
	}
	return false
}

// Autoscaler reads and writes the autoscalers of one kind.
type Autoscaler struct {
	Kind
	client client.Client
	reader client.Reader
}

// Observe reads the user's autoscaler and the primary's copy. What only the
// user can fix comes back as a *StalledError.
func (a *Autoscaler) Observe(ctx context.Context, t Target) (*State, error) {
	ro := t.Rollout
	name := ro.Spec.AutoscalerRef.Name
	user, err := a.readUser(ctx, t)
	if err != nil {
		return nil, err
	}
	src, err := a.Read(user)
	if err != nil {
		return nil, invalid("%s %s cannot be copied for the primary: %v", a.Kind.Kind(), name, err)
	}
	if src.ScaleTarget != (ScaleTarget{Kind: "Deployment", Name: t.Deployment}) {
		return nil, invalid("%s %s scales %s %s, not the Rollout's target Deployment %s: point its scaleTargetRef at the target",
			a.Kind.Kind(), name, src.ScaleTarget.Kind, src.ScaleTarget.Name, t.Deployment)
	}
	if _, err := a.Build(src.Spec, primaryFor(t)); err != nil {
		return nil, invalid("%s %s cannot be copied for the primary: %v", a.Kind.Kind(), name, err)
	}
	key, val := a.PauseAnnotation()
	st := &State{User: user, Source: src, Paused: key != "" && user.GetAnnotations()[key] == val}

	cp := a.New()
	err = a.reader.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: CopyName(name)}, cp)
	switch {
	case apierrors.IsNotFound(err):
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s %s: %w", a.Kind.Kind(), CopyName(name), err)
	}
	if !metav1.IsControlledBy(cp, ro) {
		return nil, &StalledError{Reason: ReasonConflict, Message: fmt.Sprintf(
			"%s %s exists and is not managed by this Rollout: remove or rename it, Sluice creates it for the primary", a.Kind.Kind(), cp.GetName())}
	}
	st.Copy = cp
	return st, nil
}

// readUser reads the user's autoscaler.
func (a *Autoscaler) readUser(ctx context.Context, t Target) (client.Object, error) {
	ns, name := t.Rollout.Namespace, t.Rollout.Spec.AutoscalerRef.Name
	user := a.New()
	err := a.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, user)
	switch {
	case apierrors.IsNotFound(err):
		return nil, &StalledError{Reason: ReasonNotFound, Message: fmt.Sprintf(
			"%s %s named in autoscalerRef does not exist in namespace %s: create it, or remove autoscalerRef", a.Kind.Kind(), name, ns)}
	case meta.IsNoMatchError(err):
		return nil, &StalledError{Reason: ReasonUnavailable, Message: fmt.Sprintf(
			"autoscalerRef names a %s, which this cluster does not serve: %v", a.Kind.Kind(), err)}
	case err != nil:
		return nil, fmt.Errorf("reading %s %s: %w", a.Kind.Kind(), name, err)
	}
	return user, nil
}

func invalid(format string, args ...any) *StalledError {
	return &StalledError{Reason: ReasonInvalid, Message: fmt.Sprintf(format, args...)}
}

// Sync creates the primary's copy when it is missing and keeps Sluice's
// part of it (scale target, bounds, queries, owner, labels) in sync. The
// user's spec is copied when the copy is created and at a release only;
// otherwise the copy keeps the spec it was last released with.
func (a *Autoscaler) Sync(ctx context.Context, t Target, s *State, rel Release) error {
	ann := sourceAnnotations(s.Copy)
	switch {
	case s.Copy == nil || ann[SourceAnnotation] == "":
		ann[SourceAnnotation], ann[RevisionAnnotation] = string(s.Source.Spec), rel.Revision
	case rel.Revision != "" && rel.Revision != ann[RevisionAnnotation]:
		if ann[RevisionAnnotation] == rel.Stable {
			ann[StableSourceAnnotation], ann[StableRevisionAnnotation] = ann[SourceAnnotation], rel.Stable
		}
		ann[SourceAnnotation], ann[RevisionAnnotation] = string(s.Source.Spec), rel.Revision
	}
	return a.write(ctx, t, s, ann)
}

// Restore builds the copy again from the source it kept for revision rev
// (an abort during a promotion); a copy that kept none is left as it is.
func (a *Autoscaler) Restore(ctx context.Context, t Target, s *State, rev string) error {
	ann := sourceAnnotations(s.Copy)
	if s.Copy == nil || ann[StableRevisionAnnotation] != rev || ann[StableSourceAnnotation] == "" {
		return nil
	}
	ann[SourceAnnotation], ann[RevisionAnnotation] = ann[StableSourceAnnotation], rev
	return a.write(ctx, t, s, ann)
}

// sourceAnnotations returns the copy's source annotations ("" when absent).
func sourceAnnotations(cp client.Object) map[string]string {
	out := map[string]string{}
	for _, k := range []string{SourceAnnotation, RevisionAnnotation, StableSourceAnnotation, StableRevisionAnnotation} {
		if cp != nil {
			out[k] = cp.GetAnnotations()[k]
		}
	}
	return out
}

// write brings the copy to the one built from ann's source.
func (a *Autoscaler) write(ctx context.Context, t Target, s *State, ann map[string]string) error {
	want, err := a.Build([]byte(ann[SourceAnnotation]), primaryFor(t))
	if err != nil {
		return invalid("building the primary's %s: %v", a.Kind.Kind(), err)
	}
	wantSrc, err := a.Read(want)
	if err != nil {
		return fmt.Errorf("reading the primary's %s as built: %w", a.Kind.Kind(), err)
	}
	ann[ChecksumAnnotation] = checksum(wantSrc.Spec)
	if s.Copy != nil && a.inSync(t, s.Copy, wantSrc, ann) {
		return nil
	}
	labels, annotations := map[string]string{}, map[string]string{}
	if s.Copy != nil {
		maps.Copy(labels, s.Copy.GetLabels())
		maps.Copy(annotations, s.Copy.GetAnnotations())
		want.SetResourceVersion(s.Copy.GetResourceVersion())
		want.SetFinalizers(s.Copy.GetFinalizers())
		want.SetOwnerReferences(s.Copy.GetOwnerReferences())
	}
	maps.Copy(labels, t.Labels)
	for k, v := range ann {
		if v == "" {
			delete(annotations, k)
			continue
		}
		annotations[k] = v
	}
	want.SetLabels(labels)
	want.SetAnnotations(annotations)
	if err := controllerutil.SetControllerReference(t.Rollout, want, a.client.Scheme()); err != nil {
		return err
	}
	if s.Copy == nil {
		err := a.client.Create(ctx, want)
		if apierrors.IsAlreadyExists(err) {
			// Created by an earlier reconcile that the cache has not
			// caught up with: the next one reads it.
			return nil
		}
		if err != nil {
			return fmt.Errorf("creating %s %s: %w", a.Kind.Kind(), want.GetName(), err)
		}
	} else if err := a.client.Update(ctx, want); err != nil {
		return fmt.Errorf("updating %s %s: %w", a.Kind.Kind(), want.GetName(), err)
	}
	s.Copy = want
	return nil
}

// inSync reports whether the copy holds what Sluice would write: its
// annotations and labels, its owner, and the scale target and bounds of
// its spec (a spec Sluice wrote is known by its checksum).
func (a *Autoscaler) inSync(t Target, have client.Object, want Source, ann map[string]string) bool {
	for k, v := range ann {
		if have.GetAnnotations()[k] != v {
			return false
		}
	}
	for k, v := range t.Labels {
		if have.GetLabels()[k] != v {
			return false
		}
	}
	if !metav1.IsControlledBy(have, t.Rollout) {
		return false
	}
	got, err := a.Read(have)
	return err == nil && got.ScaleTarget == want.ScaleTarget &&
		got.MinReplicas == want.MinReplicas && got.MaxReplicas == want.MaxReplicas
}

// NeedsPause reports whether Pause(paused) would write.
func (a *Autoscaler) NeedsPause(s *State, paused bool) bool {
	key, _ := a.PauseAnnotation()
	return key != "" && s.Paused != paused
}

// Pause sets (paused) or removes the kind's pause annotation on the user's
// autoscaler. Pausing overwrites any value; resuming removes only Sluice's,
// so a pause the user set with another value outlasts a run.
func (a *Autoscaler) Pause(ctx context.Context, s *State, paused bool) error {
	if !a.NeedsPause(s, paused) {
		return nil
	}
	key, val := a.PauseAnnotation()
	var v any = val
	if !paused {
		v = nil
	}
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: v}}})
	if err != nil {
		return err
	}
	if err := a.client.Patch(ctx, s.User, client.RawPatch(types.MergePatchType, raw)); err != nil {
		return fmt.Errorf("setting %s=%v on %s %s: %w", key, v, a.Kind.Kind(), s.User.GetName(), err)
	}
	s.Paused = paused
	return nil
}

// Release undoes what Sluice did for the autoscaler of t (named by
// t.Rollout.Spec.AutoscalerRef) once the Rollout no longer uses it: Sluice's
// pause is lifted from it, and the primary's copy deleted. It reports
// whether there was anything to undo; a missing autoscaler, copy or kind is
// not an error.
func (a *Autoscaler) Release(ctx context.Context, t Target) (bool, error) {
	key, val := a.PauseAnnotation()
	undone := false
	if key != "" {
		user, err := a.readUser(ctx, t)
		var stalled *StalledError
		switch {
		case errors.As(err, &stalled):
		case err != nil:
			return false, err
		case user.GetAnnotations()[key] == val:
			if err := a.Pause(ctx, &State{User: user, Paused: true}, false); err != nil {
				return false, err
			}
			undone = true
		}
	}
	cp := a.New()
	err := a.reader.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: CopyName(t.Rollout.Spec.AutoscalerRef.Name)}, cp)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return undone, nil
	case err != nil:
		return false, fmt.Errorf("reading %s %s: %w", a.Kind.Kind(), CopyName(t.Rollout.Spec.AutoscalerRef.Name), err)
	case !metav1.IsControlledBy(cp, t.Rollout):
		// Not Sluice's: someone else's object of that name stays.
		return undone, nil
	}
	if err := a.client.Delete(ctx, cp, client.Preconditions{UID: ptrTo(cp.GetUID())}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting the primary's %s %s: %w", a.Kind.Kind(), cp.GetName(), err)
	}
	return true, nil
}

func ptrTo[T any](v T) *T { return &v }

// Resume removes Sluice's pause from the user's autoscaler, when there is
// one to remove; a missing autoscaler or kind is not an error.
func (a *Autoscaler) Resume(ctx context.Context, t Target) error {
	key, val := a.PauseAnnotation()
	if key == "" {
		return nil
	}
	user, err := a.readUser(ctx, t)
	var stalled *StalledError
	if errors.As(err, &stalled) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.Pause(ctx, &State{User: user, Paused: user.GetAnnotations()[key] == val}, false)
}
