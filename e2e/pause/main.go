// Command pause is the sandbox ("pause") container of the e2e cluster's real
// node: containerd's sandbox_image is localhost/pause:3.10, built from this
// program by `make images`, because the upstream pause image cannot be
// pulled here. Like the upstream one it holds the pod's namespaces open: it
// sleeps until SIGTERM or SIGINT (then exits 0) and, as PID 1 of a pod that
// shares its PID namespace, reaps the zombie children handed to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	serve(notify())
}

// notify subscribes to the signals pause acts on.
func notify() chan os.Signal {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	return sigs
}

// serve reaps children on SIGCHLD and exits 0 on SIGTERM or SIGINT.
func serve(sigs chan os.Signal) {
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap waits for every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for several children: loop until none is left.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
