// Package plugin implements `kubectl sluice`: it lists and shows Sluice
// Rollouts, asks the controller for runtime actions (promote, abort, retry,
// pause, resume) through annotations, and waits for a release to end in CI.
//
// The command line follows kubectl's conventions (k8s.io/cli-runtime config
// flags: -n, --context, --kubeconfig, ...). Run is the entry point; it returns
// the process exit code so tests can drive it with buffers.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes of kubectl-sluice.
const (
	// ExitOK: the command did what was asked; for status, the release ended
	// well (or, without --wait, has not failed).
	ExitOK = 0
	// ExitFailed: the release failed, or the command could not do its work.
	ExitFailed = 1
	// ExitTimeout: status --wait gave up after --timeout.
	ExitTimeout = 2
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/sluice-dev/sluice/pkg/plugin.Version=v0.1.0".
var Version = ""

// exitError ends the command with a given exit code. An empty message means
// the command already said what happened.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Run runs kubectl-sluice with args (without the program name) and returns
// the exit code. ctx ends long-running commands (watch, wait).
func Run(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(streams.ErrOut, "error:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	return ExitFailed
}

// options is what every subcommand shares: the kubeconfig flags and streams.
type options struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// NewCommand builds the kubectl-sluice command tree.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	root := &cobra.Command{
		Use:   "kubectl-sluice",
		Short: "See and steer Sluice progressive releases",
		Long: "kubectl sluice shows Sluice Rollouts and asks the controller for runtime\n" +
			"actions without editing the spec, so GitOps tools see no drift.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl sluice",
		},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	o.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newListCommand(o),
		newGetCommand(o),
		newStatusCommand(o),
		newDashboardCommand(o),
		newConvertCommand(o),
		newVersionCommand(o),
	)
	for _, a := range actionCommands {
		root.AddCommand(newActionCommand(o, a))
	}
	return root
}

func newVersionCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(o.streams.Out, "kubectl-sluice %s\n", version())
			return nil
		},
	}
}

// version is Version, else the module version the binary was built from.
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev (" + s.Value[:12] + ")"
			}
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return "dev"
}
