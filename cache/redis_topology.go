package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/outbound"
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
// off): ca_file added to the system roots, server_name, and the client certificate
// (outbound.TLSConfig). Its errors name the key and never carry a key's content.
func RedisTLS(rc configs.Redis) (*tls.Config, error) {
	if !rc.TLS {
		return nil, nil
	}
	c, err := outbound.TLSConfig(rc.CAFile, rc.ClientCertFile, rc.ClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("cache.redis.%w", err)
	}
	// ServerName empty: crypto/tls takes each server's host from the address it dials,
	// which is what a Sentinel set or a Cluster, with one address per node, needs.
	c.ServerName = rc.ServerName
	return c, nil
}

// newClient builds the go-redis client of the configured topology. Every topology gets
// the same short timeouts and no retries: a slow or failing Redis must turn into a
// quick miss and degraded mode, never into a request that waits. Cluster redirections
// (MOVED, ASK) during a resharding are followed all the same: they are not retries.
func newClient(rc configs.Redis, tlsCfg *tls.Config, opTO time.Duration) redis.UniversalClient {
	o := &redis.UniversalOptions{
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
		// Maintenance notifications are a Redis Enterprise feature; asking for them costs
		// a round trip per connection for nothing.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch topologyOf(rc) {
	case TopologySentinel:
		o.Addrs, o.MasterName = rc.Sentinel.Addrs, rc.Sentinel.MasterName
		o.SentinelUsername, o.SentinelPassword = rc.Sentinel.Username, rc.Sentinel.Password
		return redis.NewFailoverClient(o.Failover())
	case TopologyCluster:
		o.Addrs = rc.Cluster.Addrs
		return redis.NewClusterClient(o.Cluster())
	}
	o.Addrs = []string{rc.Addr}
	return redis.NewClient(o.Simple())
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
