package ldap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// DefaultInto is where a lookup merges the entry when into: is not given.
const DefaultInto = "directory"

// Lookup is the `lookup:` enrichment step: it finds the user's entry with a filter built
// from the identity document and merges it into the document under into.
type Lookup struct {
	provider string
	filter   *filter
	search   *search
	into     string
	required bool
	ttl      time.Duration
	log      *slog.Logger
}

var (
	_ providers.Enricher      = (*Lookup)(nil)
	_ providers.HealthChecker = (*Lookup)(nil)
	_ providers.StepFactory   = NewLookup
)

// LookupConfig is a provider's `lookup:` step.
type LookupConfig struct {
	// Directory names a directory under directories:. Required.
	Directory string `yaml:"directory,omitempty"`
	// Filter finds the user's entry; {{gjson path}} placeholders are RFC 4515-escaped.
	// Required.
	Filter string `yaml:"filter,omitempty"`
	// Attributes are the attributes merged; default: every user attribute.
	Attributes []string `yaml:"attributes,omitempty"`
	// Into is the document key the entry is merged under; default directory.
	Into string `yaml:"into,omitempty"`
	// Required refuses the user (403) when no entry, or two, match; default true.
	Required *bool `yaml:"required,omitempty"`
	// CacheTTL bounds how long the enriched document is cached; default 5m.
	CacheTTL time.Duration `yaml:"cache_ttl,omitempty"`
}

// NewLookup builds a provider's lookup step from its section. p is unused: a lookup
// needs only the document the provider produced.
func NewLookup(step *configs.Section, owner *configs.ProviderSection, _ providers.Provider, deps providers.Deps) (providers.Enricher, error) {
	var lk LookupConfig
	if errs := step.Decode(&lk); len(errs) > 0 {
		return nil, errs
	}
	var errs configs.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, step.Errorf(key, format, args...))
	}
	l := &Lookup{
		provider: owner.Name,
		into:     cmp.Or(lk.Into, DefaultInto),
		required: lk.Required == nil || *lk.Required,
		ttl:      lk.CacheTTL,
		log:      logger(deps, owner.Name),
	}
	if l.ttl == 0 {
		l.ttl = DefaultCacheTTL
	} else if l.ttl < 0 {
		bad("cache_ttl", "must not be negative")
	}
	dir, err := directory(deps, lk.Directory)
	if err != nil && !errors.Is(err, errReported) {
		bad("directory", "%v", err)
	}
	if lk.Filter == "" {
		bad("filter", "required")
	} else if f, err := compileFilter(lk.Filter); err != nil {
		bad("filter", "%v", err)
	} else {
		l.filter = f
	}
	for i, a := range lk.Attributes {
		if strings.TrimSpace(a) == "" {
			bad(fmt.Sprintf("attributes[%d]", i), "must not be empty")
		}
	}
	// into is one key of the document, so that "directory.mail" reaches it as a gjson
	// path; characters gjson treats specially would make it unreachable.
	if strings.ContainsAny(l.into, ".*?#|@\\!=<>%") {
		bad("into", "must be a plain key (no . * ? # | @ \\ ! = < > %%), not %q", l.into)
	}
	if len(errs) > 0 || dir == nil {
		return nil, errs
	}
	l.search = newSearch(dir, lk.Attributes)
	return l, nil
}

// Into is the document key the step writes.
func (l *Lookup) Into() string { return l.into }

// Enrich merges the user's directory entry into doc under into. No entry, or several,
// refuses the user (ErrAccessDenied) when the lookup is required, and leaves doc
// unchanged when it is not. A directory that cannot answer gives ErrUnavailable either
// way: caching a document without its entry during an outage would change the user's
// email for cache_ttl.
func (l *Lookup) Enrich(ctx context.Context, _ string, doc []byte) ([]byte, error) {
	flt, ok := l.filter.build(doc)
	if !ok {
		// A placeholder's claim is missing: no entry can be found for this identity.
		return l.missing(doc, fmt.Errorf("a placeholder of the filter has no value in the identity: %w", ErrNotFound))
	}
	l.log.Debug("ldap: lookup search", "filter", flt)
	e, dns, err := l.search.findOne(ctx, flt)
	switch {
	case err == nil:
	case errors.Is(err, ErrAmbiguous):
		l.log.Warn("ldap: lookup matches several entries; refused", "entries", dns)
		return l.missing(doc, err)
	case errors.Is(err, ErrNotFound):
		return l.missing(doc, err)
	default:
		return nil, err
	}
	out, err := mergeInto(doc, l.into, l.search.document(e, ""))
	if err != nil {
		return nil, fmt.Errorf("ldap: lookup: %w: %w", providers.ErrUnavailable, err)
	}
	return out, nil
}

// missing answers a search that found no single entry.
func (l *Lookup) missing(doc []byte, err error) ([]byte, error) {
	if l.required {
		return nil, fmt.Errorf("ldap: lookup: %w: %w", providers.ErrAccessDenied, err)
	}
	return doc, nil
}

// TTL is the lookup's cache_ttl: a change in the directory shows after at most this long.
func (l *Lookup) TTL() time.Duration { return l.ttl }

// Health reports on the lookup's directory.
func (l *Lookup) Health(ctx context.Context) providers.Health {
	return l.search.dir.Health(ctx)
}

// mergeInto is providers.MergeInto (one implementation for every step).
func mergeInto(doc []byte, key string, v []byte) ([]byte, error) {
	return providers.MergeInto(doc, key, v)
}
