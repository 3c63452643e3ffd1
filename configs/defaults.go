package configs

import "time"

// Defaults, as documented on each field and in the contract's configuration listing.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultAdminListen       = "127.0.0.1:9090"
	DefaultUserDetailPath    = "/v1/user-detail"
	DefaultExchangePath      = "/v1/token-exchange"
	DefaultRealm             = "idbridge"
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultRequestTimeout    = 15 * time.Second
	DefaultShutdownTimeout   = 20 * time.Second
	DefaultMaxHeaderBytes    = 16384
	DefaultIdleTimeout       = 60 * time.Second
	// Spotnana's calls come from a few egress addresses over keep-alive connections, and
	// a proxy in front pools a few hundred at most: 256 per address and 2048 in all leave
	// room for both while one client can no longer hold every descriptor.
	DefaultMaxConnections          = 2048
	DefaultMaxConnectionsPerClient = 256
	DefaultSubjectTokenType        = "urn:ietf:params:oauth:token-type:access_token"
	DefaultJWKSPath                = "/.well-known/jwks.json"
)

// setDefaults fills every key left out (or left zero) with its default. It runs after
// decoding and before validation, so validation sees the values that will be used.
func setDefaults(c *Config) {
	s := &c.Server
	setStr(&s.Listen, DefaultListen)
	setStr(&s.AdminListen, DefaultAdminListen)
	setStr(&s.UserDetailPath, DefaultUserDetailPath)
	if s.ExchangePath == nil { // an explicit "" disables the route
		p := DefaultExchangePath
		s.ExchangePath = &p
	}
	setStr(&s.Realm, DefaultRealm)
	setDur(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&s.RequestTimeout, DefaultRequestTimeout)
	setDur(&s.ShutdownTimeout, DefaultShutdownTimeout)
	setInt(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDur(&s.IdleTimeout, DefaultIdleTimeout)
	setInt(&s.MaxConnections, DefaultMaxConnections)
	setInt(&s.MaxConnectionsPerClient, DefaultMaxConnectionsPerClient)

	setStr(&c.Log.Level, "info")
	setStr(&c.Log.Format, "json")

	setStr(&c.Cache.Backend, "memory")
	setInt(&c.Cache.MaxEntries, 100000)
	setInt(&c.Cache.MaxBytes, 256<<20)
	if c.Cache.Redis.Sentinel == nil && c.Cache.Redis.Cluster == nil {
		setStr(&c.Cache.Redis.Addr, "127.0.0.1:6379")
	}
	setStr(&c.Cache.Redis.KeyPrefix, "idbridge:")

	setStr(&c.Response.EmailField, "email")

	if sp := c.Spotnana; sp != nil {
		setStr(&sp.Mode, "callback")
		setDur(&sp.Timeout, 10*time.Second)
		if sp.MaxRetries == nil {
			n := 3
			sp.MaxRetries = &n
		}
		if sp.TokenCache == nil {
			t := true
			sp.TokenCache = &t
		}
		a := &sp.Assertion
		setStr(&a.Audience, "spotnana")
		setStr(&a.SubjectPath, "sub")
		setStr(&a.SubjectTokenType, DefaultSubjectTokenType)
		setDur(&a.TTL, 5*time.Minute)
		setDur(&a.PublishAhead, 10*time.Minute)
		setStr(&a.JWKSPath, DefaultJWKSPath)
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}
