package ldap

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// Defaults of a `type: ldap` provider.
const (
	DefaultCacheTTL = 5 * time.Minute
	// NegativeTTL keeps an unknown token's verdict apart for a short while, so that a
	// client retrying a bad token does not search the directory each time.
	NegativeTTL = 10 * time.Second
)

// tokenPlaceholder is the only placeholder a `type: ldap` filter may use.
const tokenPlaceholder = "token_sha256"

// Config is a `type: ldap` provider's own keys.
type Config struct {
	// Directory names the connection under directories:. Required.
	Directory string `yaml:"directory"`
	// Filter finds the token's entry; it must contain {{token_sha256}}, the lower-case hex
	// SHA-256 of the token. The raw token is never placed into a filter. Required.
	Filter string `yaml:"filter"`
	// Attributes are the attributes returned in the identity document. Default: every user
	// attribute the service account may read (passwords are always left out).
	Attributes []string `yaml:"attributes"`
	// Accepts is the token shapes this provider considers: opaque (default), jwt or any.
	Accepts string `yaml:"accepts"`
	// CacheTTL bounds how long an accepted token is cached: a token revoked in the
	// directory is refused after at most this long. Default 5m; 0 disables the cache.
	CacheTTL *time.Duration `yaml:"cache_ttl"`
}

// Provider finds an API token in a directory by its SHA-256: directories that hold
// tokens for legacy clients store the hash, never the token.
type Provider struct {
	name    string
	accepts providers.Accepts
	filter  *filter
	search  *search
	log     *slog.Logger
}

var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.HealthChecker = (*Provider)(nil)
	_ providers.Factory       = New
)

// Registration is the ldap provider type's entry in the registry.
func Registration() providers.Type { return providers.Type{New: New} }

// LookupStep is the `lookup:` enrichment step's entry in the registry.
func LookupStep() providers.Step { return providers.Step{Key: "lookup", New: NewLookup} }

// DirectoriesRegistration makes this package the owner of the `directories:` section.
func DirectoriesRegistration() *providers.DirectoriesType {
	return &providers.DirectoriesType{New: NewDirectories, Secrets: []string{"bind_password"}}
}

// New builds a `type: ldap` provider from its section. Configuration errors are returned
// together as configs.Errors.
func New(sec *configs.ProviderSection, deps providers.Deps) (providers.Instance, error) {
	var cfg Config
	errs := sec.Decode(&cfg)
	if len(errs) > 0 {
		return providers.Instance{}, errs
	}
	p := &Provider{name: sec.Name, log: logger(deps, sec.Name)}

	if a, err := providers.ParseAccepts(cfg.Accepts); err != nil {
		errs = append(errs, sec.Errorf("accepts", "%v", err))
	} else {
		p.accepts = a
	}
	dir, err := directory(deps, cfg.Directory)
	if err != nil && !errors.Is(err, errReported) {
		errs = append(errs, sec.Errorf("directory", "%v", err))
	}
	if cfg.Filter == "" {
		errs = append(errs, sec.Errorf("filter", "required"))
	} else if f, err := compileFilter(cfg.Filter); err != nil {
		errs = append(errs, sec.Errorf("filter", "%v", err))
	} else {
		p.filter = f
		hasToken := false
		for _, path := range f.paths() {
			if path == tokenPlaceholder {
				hasToken = true
			} else {
				errs = append(errs, sec.Errorf("filter", "unknown placeholder {{%s}}: only {{%s}} is defined here", path, tokenPlaceholder))
			}
		}
		if !hasToken {
			errs = append(errs, sec.Errorf("filter", "must contain {{%s}}", tokenPlaceholder))
		}
	}
	ttl := DefaultCacheTTL
	if cfg.CacheTTL != nil {
		ttl = *cfg.CacheTTL
		if ttl < 0 {
			errs = append(errs, sec.Errorf("cache_ttl", "must not be negative"))
		}
	}
	if len(errs) > 0 || dir == nil {
		return providers.Instance{}, errs
	}
	p.search = newSearch(dir, cfg.Attributes)
	return providers.Instance{
		Name:        sec.Name,
		Type:        Type,
		Provider:    p,
		CacheTTL:    ttl,
		NegativeTTL: NegativeTTL,
		Fingerprint: sec.Fingerprint,
	}, nil
}

// Authenticate looks the token up by its SHA-256. No entry, or more than one, refuses the
// token (ErrInvalidToken); a directory that cannot answer gives ErrUnavailable, never a
// refusal.
func (p *Provider) Authenticate(ctx context.Context, token string) (providers.Identity, error) {
	if !p.accepts.Considers(token) {
		return providers.Identity{}, fmt.Errorf("ldap: %w", providers.ErrNotMine)
	}
	sum := providers.TokenSum(token)
	hash := hex.EncodeToString(sum[:])
	// The document holds only the hash: the template engine never sees the token.
	flt, ok := p.filter.build(marshal(map[string]string{tokenPlaceholder: hash}))
	if !ok {
		return providers.Identity{}, fmt.Errorf("ldap: building the filter: %w", providers.ErrUnavailable)
	}
	// The filter holds the full hash, which is what the directory stores for the token:
	// log only its fingerprint.
	p.log.Debug("ldap: token search", "fingerprint", hash[:8])
	e, dns, err := p.search.findOne(ctx, flt)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		return providers.Identity{}, fmt.Errorf("ldap: %w: %w", providers.ErrInvalidToken, err)
	case errors.Is(err, ErrAmbiguous):
		p.log.Warn("ldap: a token matches several entries; refused", "entries", dns, "fingerprint", hash[:8])
		return providers.Identity{}, fmt.Errorf("ldap: %w: %w", providers.ErrInvalidToken, err)
	default:
		return providers.Identity{}, err
	}
	return providers.Identity{Document: p.search.document(e, hash)}, nil
}

// Health reports on the provider's directory.
func (p *Provider) Health(ctx context.Context) providers.Health {
	return p.search.dir.Health(ctx)
}

// errReported: the directory is configured but its own section had errors, already
// reported by NewDirectories; a reference to it adds none.
var errReported = errors.New("directory section has errors")

// directory resolves a directory name through deps.
func directory(deps providers.Deps, name string) (*Directory, error) {
	if name == "" {
		return nil, errors.New("required: the name of a directory under directories:")
	}
	ds, _ := deps.Directories.(*Directories)
	if ds == nil || (len(ds.dirs) == 0 && len(ds.broken) == 0) {
		return nil, fmt.Errorf("unknown directory %q: no directories: are configured", name)
	}
	if ds.broken[name] {
		return nil, errReported
	}
	d, ok := ds.directory(name)
	if !ok {
		return nil, fmt.Errorf("unknown directory %q (configured: %s)", name, strings.Join(ds.names(), ", "))
	}
	return d, nil
}

func logger(deps providers.Deps, provider string) *slog.Logger {
	if deps.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return deps.Logger.With("provider", provider)
}

// Type is the provider type name in the config (type: ldap).
const Type = "ldap"
