// Package ownwrites keeps a controller from acting on cached copies that
// its own writes have left behind. The cache learns of a write a moment
// after the API server answers it (on a loaded API server, much later); a
// reconcile woken in between reads the copy from before the write, takes
// what it wrote for a change still to make, and makes it again: a request
// for nothing, or one refused with 409 Conflict. Versions remembers which
// resourceVersions a write moved past; Client does so for every write it
// makes and refuses to hand out such a copy, with ErrBehind, so that the
// caller looks again once the cache has caught up. It does the same for an
// object it created that the cache does not have yet: created again, it
// would be refused as existing.
package ownwrites

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrBehind says a cached copy predates a write this manager made: look
// again in a moment, once the cache has the write.
var ErrBehind = errors.New("a cached copy is older than the API server's")

// Versions remembers, per object, the resourceVersions that this
// manager's own writes moved it past, until the cache shows a copy that is
// none of them; and the objects it created, until the cache shows them.
// The zero value is ready to use.
type Versions[K comparable] struct {
	mu      sync.Mutex
	behind  map[K][]string
	created map[K]time.Time
	clock   clock.PassiveClock // nil: the real one
}

// createdGrace is how long an object this manager created may be missing
// from the cache before the absence is believed. A miss cannot tell a
// create the cache has not shown yet from a delete by someone else right
// after it; past the grace, a miss is a miss again, and the worst that
// follows is a create refused as existing, which the callers take as a
// cache behind too. It is far longer than the cache lags, even on a loaded
// API server (a second or two with 1,000 releases at once).
const createdGrace = 10 * time.Second

func (p *Versions[K]) now() time.Time {
	if p.clock == nil {
		return time.Now()
	}
	return p.clock.Now()
}

// Wrote records a write that moved the object from resourceVersion from to
// another (a write that changed nothing keeps its resourceVersion).
func (p *Versions[K]) Wrote(key K, from, to string) {
	if from == "" || from == to {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.behind == nil {
		p.behind = map[K][]string{}
	}
	if !slices.Contains(p.behind[key], from) {
		// A few at most: the versions one reconcile writes past.
		p.behind[key] = append(p.behind[key], from)
	}
}

// Created records an object this manager created. Objects created and
// never looked up again (their Rollout deleted at once, say) are forgotten
// here, once past the grace.
func (p *Versions[K]) Created(key K) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, at := range p.created {
		if now.Sub(at) >= createdGrace {
			delete(p.created, k)
		}
	}
	if p.created == nil {
		p.created = map[K]time.Time{}
	}
	p.created[key] = now
}

// IsMissing reports whether a cache that does not have the object is
// behind: this manager created it less than createdGrace ago, and the
// cache has not shown it since.
func (p *Versions[K]) IsMissing(key K) bool {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.created[key]
	return ok && now.Sub(at) < createdGrace
}

// IsBehind reports whether a cached copy at resourceVersion rv predates a
// write of ours. A copy that does not is the cache caught up (or someone
// else's newer write, which the optimistic lock or a merge patch's
// narrowness guards): the old versions are forgotten then. Any copy shows
// a create.
func (p *Versions[K]) IsBehind(key K, rv string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.created, key)
	old, ok := p.behind[key]
	if !ok {
		return false
	}
	if slices.Contains(old, rv) {
		return true
	}
	delete(p.behind, key)
	return false
}

// Forget drops what is remembered of an object (it is gone).
func (p *Versions[K]) Forget(key K) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.behind, key)
	delete(p.created, key)
}

// Client is a client.Client that remembers the versions its own updates
// and patches moved objects past, and whose Get fails with ErrBehind
// (wrapped) on a copy that predates one of them. It remembers its creates
// too: a Get that does not find an object it created fails with ErrBehind,
// until the cache has shown the object or createdGrace has passed. Lists
// and status subresources pass through as they are.
type Client struct {
	client.Client
	versions Versions[objectKey]
}

// NewClient guards c's reads with c's own writes.
func NewClient(c client.Client) *Client { return &Client{Client: c} }

// objectKey names an object across kinds: its Go type, and for
// unstructured objects, which share one type, its kind.
type objectKey struct {
	typ  reflect.Type
	gvk  schema.GroupVersionKind
	name types.NamespacedName
}

func keyOf(obj client.Object, name types.NamespacedName) objectKey {
	k := objectKey{typ: reflect.TypeOf(obj), name: name}
	if _, ok := obj.(runtime.Unstructured); ok {
		k.gvk = obj.GetObjectKind().GroupVersionKind()
	}
	return k
}

// Get implements client.Reader.
func (c *Client) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	k := keyOf(obj, key)
	err := c.Client.Get(ctx, key, obj, opts...)
	switch {
	case apierrors.IsNotFound(err):
		if c.versions.IsMissing(k) {
			return fmt.Errorf("%s %s, created: %w", reflect.TypeOf(obj).Elem().Name(), key.Name, ErrBehind)
		}
		return err
	case err != nil:
		return err
	}
	if c.versions.IsBehind(k, obj.GetResourceVersion()) {
		return fmt.Errorf("%s %s: %w", reflect.TypeOf(obj).Elem().Name(), key.Name, ErrBehind)
	}
	return nil
}

// Create implements client.Writer.
func (c *Client) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.Client.Create(ctx, obj, opts...); err != nil {
		return err
	}
	c.versions.Created(keyOf(obj, client.ObjectKeyFromObject(obj)))
	return nil
}

// Delete implements client.Writer: an object deleted is not waited for,
// and what was remembered of it goes.
func (c *Client) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	err := c.Client.Delete(ctx, obj, opts...)
	if err == nil || apierrors.IsNotFound(err) {
		c.versions.Forget(keyOf(obj, client.ObjectKeyFromObject(obj)))
	}
	return err
}

// Update implements client.Writer.
func (c *Client) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	from := obj.GetResourceVersion()
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return err
	}
	c.versions.Wrote(keyOf(obj, client.ObjectKeyFromObject(obj)), from, obj.GetResourceVersion())
	return nil
}

// Patch implements client.Writer. The version moved past is the one obj
// carries: that of the copy the patch was made from.
func (c *Client) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	from := obj.GetResourceVersion()
	if err := c.Client.Patch(ctx, obj, patch, opts...); err != nil {
		return err
	}
	c.versions.Wrote(keyOf(obj, client.ObjectKeyFromObject(obj)), from, obj.GetResourceVersion())
	return nil
}
