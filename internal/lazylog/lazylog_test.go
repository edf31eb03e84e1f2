package lazylog

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestALazyLoggerWritesWhatTheLoggerItWrapsWould(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	eager := zapr.NewLogger(zap.New(core, zap.AddCaller()))
	lazy := New(eager)

	log := func(l logr.Logger) {
		l = l.WithName("rollout").WithValues("namespace", "shop", "name", "web")
		l = l.WithValues("reconcileID", "r1")
		l.Info("shifted", "weight", 20)
		l.V(1).Info("not written at info")
		l.Error(errors.New("refused"), "patch failed", "code", 409)
	}
	log(eager)
	log(lazy)

	entries := logs.AllUntimed()
	if len(entries) != 4 {
		t.Fatalf("got %d entries, want 2 from each logger: %v", len(entries), entries)
	}
	for i := range 2 {
		e, l := entries[i], entries[i+2]
		if e.Message != l.Message || e.LoggerName != l.LoggerName || e.Level != l.Level {
			t.Errorf("entry %d: lazy wrote %q by %q at %v, eager %q by %q at %v", i, l.Message, l.LoggerName, l.Level, e.Message, e.LoggerName, e.Level)
		}
		if got, want := fieldsOf(l), fieldsOf(e); len(got) != len(want) || !equal(got, want) {
			t.Errorf("entry %d: lazy fields %v, eager %v", i, got, want)
		}
		if file := filepath.Base(l.Caller.File); file != "lazylog_test.go" {
			t.Errorf("entry %d: caller %s, want this test", i, l.Caller.String())
		}
		if l.Caller.Line != e.Caller.Line {
			t.Errorf("entry %d: caller line %d, eager's %d", i, l.Caller.Line, e.Caller.Line)
		}
	}
}

func fieldsOf(e observer.LoggedEntry) []string {
	var out []string
	for _, f := range e.Context {
		out = append(out, f.Key)
	}
	return out
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// countingSink counts the pairs handed to it.
type countingSink struct {
	logr.LogSink
	withValues *int
}

func (c countingSink) WithValues(kv ...any) logr.LogSink {
	*c.withValues++
	return countingSink{c.LogSink.WithValues(kv...), c.withValues}
}

func TestALazyLoggerHandsOverItsValuesOnlyWhenItWrites(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n := 0
	lazy := New(logr.New(countingSink{zapr.NewLogger(zap.New(core)).GetSink(), &n}))

	l := lazy.WithValues("namespace", "shop").WithValues("name", "web")
	a, b := l.WithValues("reconcileID", "a"), l.WithValues("reconcileID", "b")
	l.V(1).Info("not written at info")
	if n != 0 {
		t.Fatalf("the wrapped sink was given values %d times before anything was written", n)
	}
	a.Info("one")
	b.Info("two")
	if n != 2 {
		t.Errorf("the wrapped sink was given values %d times for 2 entries, want 2", n)
	}
	// Loggers derived from one logger keep their own values.
	for i, want := range []string{"a", "b"} {
		e := logs.AllUntimed()[i]
		if got := e.ContextMap()["reconcileID"]; got != want || e.ContextMap()["name"] != "web" {
			t.Errorf("entry %q has fields %v, want reconcileID %s beside namespace and name", e.Message, e.ContextMap(), want)
		}
	}
}
