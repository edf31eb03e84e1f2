package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The real node changes the host: sysctls (the kubelet and the bridge
// plugin set them), iptables rules (kube-proxy, the kubelet, the harness's
// forward fence), nft tables (iptables-nft creates the tables it touches),
// mounts (volumes, container root filesystems, network namespaces) and
// cgroups. This file records what was there before and puts it back, from
// Stop or from the Sweep of the next run after a crash.

// hostSysctls are the sysctls the node's components write.
var hostSysctls = []string{
	"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops",
	"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables",
}

func saveSysctls(stateDir string) error {
	path := filepath.Join(stateDir, "sysctls.json")
	if _, err := os.Stat(path); err == nil {
		return nil // a crashed run's values are the machine's: keep them
	}
	saved := map[string]string{}
	for _, k := range hostSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			continue
		}
		saved[k] = strings.TrimSpace(string(b))
	}
	b, _ := json.Marshal(saved)
	return os.WriteFile(path, b, 0o644)
}

func restoreSysctls(stateDir string) []string {
	path := filepath.Join(stateDir, "sysctls.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	saved := map[string]string{}
	_ = json.Unmarshal(b, &saved)
	var changed []string
	for k, v := range saved {
		now, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(now)) != v {
			if os.WriteFile("/proc/sys/"+k, []byte(v), 0o644) == nil {
				changed = append(changed, "sysctl "+strings.ReplaceAll(k, "/", "."))
			}
		}
	}
	_ = os.Remove(path)
	return changed
}

func nftTables() []string {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil
	}
	var t []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			t = append(t, line)
		}
	}
	return t
}

func saveNftTables(stateDir string) error {
	path := filepath.Join(stateDir, "nft-tables")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return os.WriteFile(path, []byte(strings.Join(nftTables(), "\n")+"\n"), 0o644)
}

// removeNewNftTables deletes the nft tables that appeared since the run
// began (iptables-nft's and kube-proxy's), once their rules are gone.
func removeNewNftTables(stateDir string) []string {
	path := filepath.Join(stateDir, "nft-tables")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	before := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		before[strings.TrimSpace(l)] = true
	}
	var removed []string
	for _, t := range nftTables() {
		if before[t] {
			continue
		}
		// "table ip filter" -> nft delete table ip filter
		f := strings.Fields(t)
		if len(f) == 3 && exec.Command("nft", "delete", "table", f[1], f[2]).Run() == nil {
			removed = append(removed, "nft "+t)
		}
	}
	_ = os.Remove(path)
	return removed
}

// fenceBridge keeps the pods' traffic on the bridge: a packet forwarded
// from the bridge may only go back to the bridge (a pod reaching a Service
// address is DNATed to another pod); anything else is dropped.
func fenceBridge() error {
	for _, args := range [][]string{
		{"-N", forwardChain},
		{"-A", forwardChain, "-o", BridgeName, "-j", "RETURN"},
		{"-A", forwardChain, "-j", "DROP"},
		{"-I", "FORWARD", "1", "-i", BridgeName, "-j", forwardChain},
	} {
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// ourChain reports whether an iptables chain belongs to the node's
// components or to the harness.
func ourChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") || name == forwardChain
}

// cleanIptables rewrites each table without the node's chains and the
// rules that jump to them (iptables-restore replaces a table atomically).
func cleanIptables() []string {
	var removed []string
	for _, tool := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(tool + "-save").Output()
		if err != nil {
			continue
		}
		var keep bytes.Buffer
		dropped := 0
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Text()
			f := strings.Fields(line)
			switch {
			case len(f) > 0 && strings.HasPrefix(f[0], ":") && ourChain(f[0][1:]):
				dropped++
				continue
			case len(f) > 1 && f[0] == "-A" && (ourChain(f[1]) || jumpsToOurs(f)):
				dropped++
				continue
			}
			keep.WriteString(line + "\n")
		}
		if dropped == 0 {
			continue
		}
		cmd := exec.Command(tool + "-restore")
		cmd.Stdin = &keep
		if o, err := cmd.CombinedOutput(); err != nil {
			removed = append(removed, fmt.Sprintf("%s-restore failed: %v: %s", tool, err, o))
			continue
		}
		removed = append(removed, fmt.Sprintf("%s: %d node rules and chains", tool, dropped))
	}
	return removed
}

func jumpsToOurs(f []string) bool {
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && ourChain(f[i+1]) {
			return true
		}
	}
	return false
}

// killUnder kills every process whose command line or working files point
// into dir (containerd's shims and the containers they run).
func killUnder(dir string) []string {
	var killed []string
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, fmt.Sprintf("process %d (%s)", pid, firstArg(cmdline)))
		}
	}
	return killed
}

func firstArg(cmdline []byte) string {
	a, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(a))
}

// killPods kills what runs in the kubelet's pod cgroups (the containers
// themselves are children of the shims' re-parented runc init).
func killPods() []string {
	var killed []string
	_ = filepath.WalkDir("/sys/fs/cgroup/pids", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if !strings.Contains(path, "/kubepods") {
			if path != "/sys/fs/cgroup/pids" && !strings.HasPrefix(filepath.Base(path), "kubepods") {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed = append(killed, "pod process "+s)
			}
		}
		return nil
	})
	return killed
}

// unmountUnder unmounts every mount point under any of the prefixes,
// deepest first.
func unmountUnder(prefixes ...string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		for _, p := range prefixes {
			if p != "" && (mp == p || strings.HasPrefix(mp, p+"/") || strings.HasPrefix(mp, p)) {
				points = append(points, mp)
				break
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var out []string
	for _, mp := range points {
		if syscall.Unmount(mp, syscall.MNT_DETACH) == nil {
			out = append(out, "mount "+mp)
		}
	}
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeKubeCgroups removes the kubelet's cgroups (kubepods and below) in
// every hierarchy, deepest first; they are empty once the pods are dead.
func removeKubeCgroups() []string {
	var dirs []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	removed := 0
	for _, d := range dirs {
		for i := 0; i < 20; i++ {
			if err := syscall.Rmdir(d); err == nil || os.IsNotExist(err) {
				removed++
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if removed == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d kubelet cgroups", removed)}
}

// sweepNode undoes what a real node changed on the host. Safe to run when
// no node ran (it then finds nothing).
func sweepNode(stateDir string) []string {
	var out []string
	b, err := os.ReadFile(filepath.Join(stateDir, "node-dir"))
	dir := strings.TrimSpace(string(b))
	if err == nil && dir != "" {
		out = append(out, killPods()...)
		out = append(out, killUnder(dir)...)
		time.Sleep(100 * time.Millisecond)
		// containerd's CRI puts sandbox network namespaces here.
		out = append(out, unmountUnder(dir, "/run/netns/cni-", "/var/run/netns/cni-")...)
		if m, _ := filepath.Glob("/run/netns/cni-*"); len(m) > 0 {
			for _, f := range m {
				_ = os.Remove(f)
			}
		}
		if err := os.RemoveAll(dir); err == nil {
			out = append(out, "dir "+dir)
		}
		_ = os.Remove(filepath.Join(stateDir, "node-dir"))
	}
	out = append(out, removeKubeCgroups()...)
	out = append(out, cleanIptables()...)
	out = append(out, removeNewNftTables(stateDir)...)
	out = append(out, restoreSysctls(stateDir)...)
	return out
}
