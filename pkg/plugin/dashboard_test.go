package plugin

import (
	"strings"
	"testing"
)

func TestDashboardSaysWhenItCannotListen(t *testing.T) {
	r := plugin(t, "dashboard", "--address", "127.0.0.1:notaport")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "listening on 127.0.0.1:notaport") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
