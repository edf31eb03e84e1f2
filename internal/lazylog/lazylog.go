// Package lazylog defers a logger's key-value pairs until it writes an
// entry. controller-runtime gives every reconcile a logger with the
// Rollout's name and a reconcile ID; a JSON zap logger encodes those
// fields the moment they are added, about 10 KiB of garbage a reconcile,
// for a reconcile that nearly always logs nothing (docs/performance.md).
package lazylog

import "github.com/go-logr/logr"

// New returns l with its WithValues deferred: the pairs are kept as they
// are given and handed to l's sink only when an entry is written. What is
// logged, and where its caller is said to be, are the same as l's.
func New(l logr.Logger) logr.Logger {
	base := l.GetSink()
	if base == nil {
		return l
	}
	// The sink was set up for logr.Logger calling it directly; this one
	// adds a frame between them.
	if cd, ok := base.(logr.CallDepthLogSink); ok {
		base = cd.WithCallDepth(1)
	}
	return logr.New(&sink{base: base})
}

type sink struct {
	base logr.LogSink
	// values are the pairs given so far, oldest first (a name added later
	// goes to base and leaves them as they are).
	values []any
}

var _ logr.CallDepthLogSink = (*sink)(nil)

// Init does nothing: base was initialised by the logger New was given.
func (s *sink) Init(logr.RuntimeInfo) {}

func (s *sink) Enabled(level int) bool { return s.base.Enabled(level) }

func (s *sink) Info(level int, msg string, kv ...any) {
	s.withValues().Info(level, msg, kv...)
}

func (s *sink) Error(err error, msg string, kv ...any) {
	s.withValues().Error(err, msg, kv...)
}

func (s *sink) WithValues(kv ...any) logr.LogSink {
	// A full slice expression: two loggers derived from one never share
	// an appended array.
	return &sink{base: s.base, values: append(s.values[:len(s.values):len(s.values)], kv...)}
}

func (s *sink) WithName(name string) logr.LogSink {
	return &sink{base: s.base.WithName(name), values: s.values}
}

func (s *sink) WithCallDepth(depth int) logr.LogSink {
	base := s.base
	if cd, ok := base.(logr.CallDepthLogSink); ok {
		base = cd.WithCallDepth(depth)
	}
	return &sink{base: base, values: s.values}
}

func (s *sink) withValues() logr.LogSink {
	if len(s.values) == 0 {
		return s.base
	}
	return s.base.WithValues(s.values...)
}
