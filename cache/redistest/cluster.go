package redistest

import (
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of primaries without replicas, on loopback.
type Cluster struct {
	Nodes []*Server
	cli   string
}

// StartCluster starts n redis-server nodes in cluster mode (each with its own bus
// port, cluster-port) and joins them with `redis-cli --cluster create`.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cli := need(t, "redis-cli")
	c := &Cluster{cli: cli}
	for range n {
		bus, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, StartWith(t, Options{Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(bus),
		}}))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitOK(t)
	return c
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Nodes {
		out = append(out, s.Addr())
	}
	return out
}

// waitOK waits until every node reports cluster_state:ok and knows every other node.
func (c *Cluster) waitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for _, s := range c.Nodes {
		for {
			info, _ := s.String("CLUSTER", "INFO")
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster never became ok: %s", info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// ID is a node's cluster ID.
func (s *Server) ID(t testing.TB) string {
	id, err := s.String("CLUSTER", "MYID")
	if err != nil {
		t.Fatalf("redistest: cluster myid: %v", err)
	}
	return id
}

// Owner returns the node that serves key's slot.
func (c *Cluster) Owner(t testing.TB, key string) *Server {
	t.Helper()
	slot, err := c.Nodes[0].String("CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(slot)
	for _, s := range c.Nodes {
		v, err := s.Do("CLUSTER", "SLOTS")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range v.([]any) {
			rng := r.([]any)
			lo, hi := rng[0].(int64), rng[1].(int64)
			node := rng[2].([]any)
			if int64(n) >= lo && int64(n) <= hi {
				port := node[1].(int64)
				for _, cand := range c.Nodes {
					if int64(cand.Port()) == port {
						return cand
					}
				}
			}
		}
		break
	}
	t.Fatalf("redistest: no owner for slot %d", n)
	return nil
}

// Reshard moves slots of from to to with `redis-cli --cluster reshard`, keys
// included, while clients keep working (they follow MOVED and ASK): the lowest of
// from's slots, up to and including the slot of key, which redis-cli takes first.
func (c *Cluster) Reshard(t testing.TB, from, to *Server, key string) {
	t.Helper()
	slot, err := c.Nodes[0].String("CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := strconv.ParseInt(slot, 10, 64)
	v, err := from.Do("CLUSTER", "SLOTS")
	if err != nil {
		t.Fatal(err)
	}
	var owned []int64
	for _, r := range v.([]any) {
		rng := r.([]any)
		if node := rng[2].([]any); node[1].(int64) == int64(from.Port()) {
			for s := rng[0].(int64); s <= rng[1].(int64); s++ {
				owned = append(owned, s)
			}
		}
	}
	slices.Sort(owned)
	n := 0
	for n < len(owned) && owned[n] <= target {
		n++
	}
	if n == 0 || owned[n-1] != target {
		t.Fatalf("redistest: %s does not own the slot of %q", from.Addr(), key)
	}
	out, err := exec.Command(c.cli, "--cluster", "reshard", c.Nodes[0].Addr(),
		"--cluster-from", from.ID(t), "--cluster-to", to.ID(t),
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes", "--cluster-pipeline", "100").CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster reshard: %v\n%s", err, out)
	}
}
