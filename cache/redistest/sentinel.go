package redistest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MasterName is the name the test sentinels monitor.
const MasterName = "idbridge-test"

// SentinelSet is a primary, one replica and three sentinels (quorum 2) that declare a
// silent primary down after half a second, so that a failover takes seconds.
type SentinelSet struct {
	Primary, Replica *Server
	Sentinels        []*Server
}

// StartSentinelSet starts the set; o shapes the two data servers. With o.TLS the
// sentinels speak TLS too (to clients and to the data servers).
func StartSentinelSet(t testing.TB, o Options) *SentinelSet {
	t.Helper()
	sentinelBin := need(t, "redis-sentinel")
	ss := &SentinelSet{Primary: StartWith(t, o)}
	ro := o
	ro.Args = append(append([]string{}, o.Args...), "--replicaof", "127.0.0.1", strconv.Itoa(ss.Primary.Port()))
	if o.TLS != nil {
		ro.Args = append(ro.Args, "--tls-replication", "yes")
	}
	ss.Replica = StartWith(t, ro)
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(ss.Replica.info("replication"), "master_link_status:up") {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: the replica never synced with the primary")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 {
		conf := []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", MasterName, ss.Primary.Port()),
			fmt.Sprintf("sentinel down-after-milliseconds %s 500", MasterName),
			fmt.Sprintf("sentinel failover-timeout %s 3000", MasterName),
			fmt.Sprintf("sentinel parallel-syncs %s 1", MasterName),
		}
		ss.Sentinels = append(ss.Sentinels, launch(t, sentinelBin, conf, func(port int) []string {
			if o.TLS == nil {
				return []string{"--port", strconv.Itoa(port)}
			}
			// Sentinels speak TLS to clients and to the data servers, with the same files.
			return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
				"--tls-cert-file", o.TLS.ServerCert, "--tls-key-file", o.TLS.ServerKey,
				"--tls-ca-cert-file", o.TLS.CA, "--tls-replication", "yes", "--tls-auth-clients", "no"}
		}, o.TLS))
	}
	// The sentinels must know each other and the replica before a failover can work.
	for _, s := range ss.Sentinels {
		for deadline := time.Now().Add(startTimeout); ; {
			out, _ := s.String("SENTINEL", "CKQUORUM", MasterName)
			if strings.HasPrefix(out, "OK 3 usable") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: sentinels never reached quorum: %q", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return ss
}

// SentinelAddrs are the sentinels' host:port.
func (ss *SentinelSet) SentinelAddrs() []string {
	var out []string
	for _, s := range ss.Sentinels {
		out = append(out, s.Addr())
	}
	return out
}

// MasterAddr asks the first sentinel that answers which server is the primary.
func (ss *SentinelSet) MasterAddr() string {
	for _, s := range ss.Sentinels {
		if a, err := s.masterAddr(); err == nil {
			return a
		}
	}
	return ""
}

func (s *Server) masterAddr() (string, error) {
	v, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
	if err != nil {
		return "", err
	}
	hp, _ := v.([]any)
	if len(hp) != 2 {
		return "", fmt.Errorf("get-master-addr-by-name: %v", v)
	}
	return net.JoinHostPort(fmt.Sprint(hp[0]), fmt.Sprint(hp[1])), nil
}

// info returns an INFO section as text.
func (s *Server) info(section string) string {
	out, _ := s.String("INFO", section)
	return out
}
