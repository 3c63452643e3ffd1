package cache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/idbridge/idbridge/configs"
)

// The topologies of `cache.redis:`, as /readyz and the metrics name them.
const (
	TopologyStandalone = "standalone"
	TopologySentinel   = "sentinel"
	TopologyCluster    = "cluster"
)

// topologyOf names the topology a `cache.redis:` section asks for.
func topologyOf(rc configs.Redis) string {
	switch {
	case rc.Sentinel != nil:
		return TopologySentinel
	case rc.Cluster != nil:
		return TopologyCluster
	}
	return TopologyStandalone
}

// RedisTLS builds the client TLS configuration of `cache.redis:` (nil when tls is
// off): ca_file added to the system roots, server_name, and the client certificate.
// client_key_file may hold the PEM itself when it came from a ${file:} reference. Its
// errors name the key and never carry a key's content.
func RedisTLS(rc configs.Redis) (*tls.Config, error) {
	if !rc.TLS {
		return nil, nil
	}
	// ServerName empty: crypto/tls takes each server's host from the address it dials,
	// which is what a Sentinel set or a Cluster, with one address per node, needs.
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: rc.ServerName}
	if rc.CAFile != "" {
		pem, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cache.redis.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cache.redis.ca_file: no PEM certificate in %s", rc.CAFile)
		}
		c.RootCAs = pool
	}
	if rc.ClientCertFile != "" {
		certPEM, err := os.ReadFile(rc.ClientCertFile)
		if err != nil {
			return nil, fmt.Errorf("cache.redis.client_cert_file: %w", err)
		}
		keyPEM := []byte(rc.ClientKeyFile)
		if !strings.Contains(rc.ClientKeyFile, "-----BEGIN") {
			if keyPEM, err = os.ReadFile(rc.ClientKeyFile); err != nil {
				return nil, errors.New("cache.redis.client_key_file: cannot read the file")
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, errors.New("cache.redis.client_cert_file: the certificate and client_key_file do not form a key pair")
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// newClient builds the go-redis client of the configured topology. Every topology gets
// the same short timeouts and no retries: a slow or failing Redis must turn into a
// quick miss and degraded mode, never into a request that waits. Cluster redirections
// (MOVED, ASK) during a resharding are followed all the same: they are not retries.
func newClient(rc configs.Redis, tlsCfg *tls.Config, opTO time.Duration) redis.UniversalClient {
	// Maintenance notifications are a Redis Enterprise feature; asking for them costs a
	// round trip per connection for nothing.
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch topologyOf(rc) {
	case TopologySentinel:
		s := rc.Sentinel
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            s.MasterName,
			SentinelAddrs:         s.Addrs,
			SentinelUsername:      s.Username,
			SentinelPassword:      s.Password,
			Username:              rc.Username,
			Password:              rc.Password,
			DB:                    rc.DB,
			TLSConfig:             tlsCfg,
			DialTimeout:           opTO,
			DialerRetries:         1,
			ReadTimeout:           opTO,
			WriteTimeout:          opTO,
			PoolTimeout:           opTO,
			MaxRetries:            -1,
			ContextTimeoutEnabled: true,
		})
	case TopologyCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                    rc.Cluster.Addrs,
			Username:                 rc.Username,
			Password:                 rc.Password,
			TLSConfig:                tlsCfg,
			DialTimeout:              opTO,
			DialerRetries:            1,
			ReadTimeout:              opTO,
			WriteTimeout:             opTO,
			PoolTimeout:              opTO,
			MaxRetries:               -1,
			ContextTimeoutEnabled:    true,
			MaintNotificationsConfig: noMaint,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr:                     rc.Addr,
		Username:                 rc.Username,
		Password:                 rc.Password,
		DB:                       rc.DB,
		TLSConfig:                tlsCfg,
		DialTimeout:              opTO,
		DialerRetries:            1,
		ReadTimeout:              opTO,
		WriteTimeout:             opTO,
		PoolTimeout:              opTO,
		MaxRetries:               -1,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: noMaint,
	})
}

// primaryFinder tells which servers are the primaries now: the configured address of
// a standalone Redis, the sentinels' answer for a Sentinel set, the slot owners of a
// Cluster.
type primaryFinder struct {
	topology  string
	addr      string
	master    string
	sentinels []*redis.SentinelClient
	cluster   *redis.ClusterClient
}

func newPrimaryFinder(rc configs.Redis, client redis.UniversalClient, tlsCfg *tls.Config, opTO time.Duration) *primaryFinder {
	f := &primaryFinder{topology: topologyOf(rc), addr: rc.Addr}
	switch f.topology {
	case TopologySentinel:
		f.master = rc.Sentinel.MasterName
		for _, a := range rc.Sentinel.Addrs {
			f.sentinels = append(f.sentinels, redis.NewSentinelClient(&redis.Options{
				Addr:        a,
				Username:    rc.Sentinel.Username,
				Password:    rc.Sentinel.Password,
				TLSConfig:   tlsCfg,
				DialTimeout: opTO, ReadTimeout: opTO, WriteTimeout: opTO, PoolTimeout: opTO,
				DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true, PoolSize: 1,
				MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
			}))
		}
	case TopologyCluster:
		f.cluster, _ = client.(*redis.ClusterClient)
	}
	return f
}

// primaries returns the current primaries' addresses, sorted.
func (f *primaryFinder) primaries(ctx context.Context) ([]string, error) {
	switch f.topology {
	case TopologySentinel:
		var errs []error
		for _, s := range f.sentinels {
			hp, err := s.GetMasterAddrByName(ctx, f.master).Result()
			if err == nil && len(hp) == 2 {
				return []string{net.JoinHostPort(hp[0], hp[1])}, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("no sentinel named the primary: %w", errors.Join(errs...))
	case TopologyCluster:
		if f.cluster == nil {
			return nil, errors.New("not a cluster client")
		}
		slots, err := f.cluster.ClusterSlots(ctx).Result()
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range slots {
			if len(s.Nodes) > 0 && !slices.Contains(out, s.Nodes[0].Addr) {
				out = append(out, s.Nodes[0].Addr)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	return []string{f.addr}, nil
}

func (f *primaryFinder) close() {
	for _, s := range f.sentinels {
		_ = s.Close()
	}
}
