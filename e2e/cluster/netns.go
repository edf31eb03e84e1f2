package cluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// The private test network: a bridge on a range used only by these tests,
// one network namespace per pod with a veth pair to the bridge. Nothing is
// routed off the machine: there is no default route out of the bridge and
// no forwarding or NAT is configured.
const (
	// BridgeName is the bridge the pods' veths join.
	BridgeName = "sluicee2e0"
	// BridgeCIDR is the bridge's own address.
	BridgeCIDR = "10.213.0.1/24"
	// BridgeIP is the bridge's address without the prefix length.
	BridgeIP = "10.213.0.1"
	// PodCIDR is where kwok hands out pod IPs (inside the bridge's /24).
	PodCIDR = "10.213.0.128/25"
	// NodeIP is the fake node's address (reported only, nothing listens).
	NodeIP = "10.213.0.2"

	netnsPrefix = "sluice-e2e-"
	vethPrefix  = "sle"
)

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupBridge creates the bridge with its address and brings it up.
func setupBridge() error {
	if err := ip("link", "add", BridgeName, "type", "bridge"); err != nil {
		return err
	}
	if err := ip("addr", "add", BridgeCIDR, "dev", BridgeName); err != nil {
		return err
	}
	return ip("link", "set", BridgeName, "up")
}

// netnsName is the namespace of the pod at podIP.
func netnsName(podIP string) string {
	return netnsPrefix + strings.ReplaceAll(podIP, ".", "-")
}

// vethName is the host side of the pod's veth (at most 15 characters).
func vethName(podIP string) string {
	p := strings.Split(podIP, ".")
	return fmt.Sprintf("%s%s-%s", vethPrefix, p[2], p[3])
}

// addPodNetwork creates the namespace of podIP with eth0 holding podIP/24,
// its veth peer on the bridge.
func addPodNetwork(podIP string) error {
	ns, veth := netnsName(podIP), vethName(podIP)
	peer := veth + "p"
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns},
		{"link", "set", veth, "master", BridgeName},
		{"link", "set", veth, "up"},
		{"-n", ns, "link", "set", peer, "name", "eth0"},
		// A MAC derived from the IP: kwok hands a freed IP to the next pod,
		// and the host's neighbour entry for it must stay right (a new
		// random MAC behind a cached entry blackholes the connections until
		// the entry expires).
		{"-n", ns, "link", "set", "eth0", "address", podMAC(podIP)},
		{"-n", ns, "addr", "add", podIP + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			delPodNetwork(podIP)
			return err
		}
	}
	return nil
}

// podMAC is a locally administered MAC holding the IPv4 address.
func podMAC(podIP string) string {
	ip := net.ParseIP(podIP).To4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", ip[0], ip[1], ip[2], ip[3])
}

// delPodNetwork kills what still runs in the pod's namespace and removes
// the namespace and its veth (deleting one end removes the pair).
func delPodNetwork(podIP string) {
	delNetns(netnsName(podIP))
	_ = ip("link", "del", vethName(podIP))
	_ = ip("neigh", "del", podIP, "dev", BridgeName)
}

func delNetns(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = ip("netns", "del", ns)
}

// sweepNetwork removes the namespaces, veths and bridge a previous run
// left behind. Only names with this harness's prefixes are touched.
func sweepNetwork() []string {
	var removed []string
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], netnsPrefix) {
				delNetns(f[0])
				removed = append(removed, "netns "+f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, vethPrefix) || name == BridgeName {
				if ip("link", "del", name) == nil {
					removed = append(removed, "link "+name)
				}
			}
		}
	}
	// `ip netns add` (and containerd's CNI) bind-mount /run/netns onto
	// itself; once it is empty again, take that mount away too.
	if entries, err := os.ReadDir("/run/netns"); err == nil && len(entries) == 0 {
		if syscall.Unmount("/run/netns", syscall.MNT_DETACH) == nil {
			removed = append(removed, "mount /run/netns")
		}
	}
	return removed
}

// checkRoot fails early with a clear message when the harness cannot
// create namespaces.
func checkRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the e2e cluster needs root (it creates network namespaces, veths and a bridge at %s)", BridgeCIDR)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the e2e cluster needs the ip command (iproute2): %w", err)
	}
	return nil
}
