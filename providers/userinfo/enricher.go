package userinfo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// Enricher is the `userinfo:` step of a provider: it calls the userinfo endpoint with the
// same token and merges the answer into the document under Into.
type Enricher struct {
	endpoint    string                   // "" : ask source
	source      providers.UserinfoSource // discovery, when endpoint is ""
	into        string
	whenMissing string // "" = always call
	subject     string // gjson-escaped document claim that must equal the answer's sub
	subjectName string // as configured, for errors
	fetcher     *fetcher
}

// DefaultSubjectClaim is subject_claim's default: OIDC Core §5.3.2 compares the answer's
// sub with the ID token's sub.
const DefaultSubjectClaim = "sub"

var _ providers.Enricher = (*Enricher)(nil)

// StepConfig is a provider's `userinfo:` step.
type StepConfig struct {
	// Endpoint is the userinfo URL; default: the provider's, from discovery.
	Endpoint string `yaml:"endpoint,omitempty"`
	// Into is the document key the answer is merged under; default userinfo.
	Into string `yaml:"into,omitempty"`
	// WhenMissing: call only when this gjson path is absent; default email; "" = always.
	WhenMissing *string `yaml:"when_missing,omitempty"`
	// SubjectClaim names the document claim that must equal the answer's sub (OIDC Core
	// §5.3.2); default sub. Okta access tokens carry the login in sub and the user id,
	// which Okta's userinfo answers as sub, in uid.
	SubjectClaim string `yaml:"subject_claim,omitempty"`
}

// NewEnricher builds the userinfo step from its section. Without an endpoint, p must
// implement providers.UserinfoSource (a jwt provider with discovery); the endpoint is
// then asked for lazily, on the first call, so that an IdP down at startup does not stop
// the config from loading.
func NewEnricher(step *configs.Section, owner *configs.ProviderSection, p providers.Provider, deps providers.Deps) (providers.Enricher, error) {
	var u StepConfig
	if errs := step.Decode(&u); len(errs) > 0 {
		return nil, errs
	}
	e := &Enricher{
		endpoint:    u.Endpoint,
		into:        u.Into,
		whenMissing: DefaultWhenMissing,
		fetcher:     newFetcher(deps, DefaultTimeout, owner.Name),
	}
	if e.into == "" {
		e.into = DefaultInto
	}
	e.subjectName = u.SubjectClaim
	if e.subjectName == "" {
		e.subjectName = DefaultSubjectClaim
	}
	e.subject = gjson.Escape(e.subjectName)
	if u.WhenMissing != nil {
		e.whenMissing = *u.WhenMissing
	}
	var errs configs.Errors
	if e.endpoint != "" {
		if msg := providers.CheckEndpointURL(e.endpoint); msg != "" {
			errs = append(errs, step.Errorf("endpoint", "%s", msg))
		}
	} else if src, ok := p.(providers.UserinfoSource); ok {
		e.source = src
	} else if p != nil { // nil: the provider's section failed; it says why

		errs = append(errs, step.Errorf("endpoint", "is required: provider type %s does not discover a userinfo endpoint", owner.Type))
	}
	if strings.ContainsAny(e.into, ".*?#|@\\") {
		errs = append(errs, step.Errorf("into", "must be a plain key, not a path"))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return e, nil
}

// Into is the document key the step writes.
func (e *Enricher) Into() string { return e.into }

// Enrich adds the userinfo answer under Into, unless WhenMissing is already in doc.
//
// OIDC Core §5.3.2: the answer's sub must equal the document's subject claim (sub, or
// subject_claim: Okta's access tokens carry the login in sub and the user id, which
// userinfo answers as sub, in uid). When they differ, or either is missing or not a
// string, the answer may be about someone else and none of it is used: ErrAccessDenied.
func (e *Enricher) Enrich(ctx context.Context, token string, doc []byte) ([]byte, error) {
	if e.whenMissing != "" && gjson.GetBytes(doc, e.whenMissing).Exists() {
		return doc, nil
	}
	endpoint := e.endpoint
	if endpoint == "" {
		ep, err := e.source.UserinfoEndpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("userinfo: %w: discovery: %w", providers.ErrUnavailable, err)
		}
		if ep == "" || providers.CheckEndpointURL(ep) != "" {
			return nil, fmt.Errorf("userinfo: %w: %w", providers.ErrUnavailable, errNoEndpoint)
		}
		endpoint = ep
	}
	answer, err := e.fetcher.fetch(ctx, endpoint, token)
	if err != nil {
		return nil, err
	}
	docSub := gjson.GetBytes(doc, e.subject)
	if docSub.Type != gjson.String || docSub.Str == "" {
		return nil, fmt.Errorf("userinfo: %w: the document has no string %s to compare with the answer's sub (subject_claim)", providers.ErrAccessDenied, e.subjectName)
	}
	ansSub := gjson.GetBytes(answer, "sub")
	if ansSub.Type != gjson.String || ansSub.Str != docSub.Str {
		return nil, fmt.Errorf("userinfo: %w: the answer's sub is missing or differs from the document's %s", providers.ErrAccessDenied, e.subjectName)
	}
	return merge(doc, e.into, answer)
}

// TTL: the step adds no bound of its own; the provider's cache_ttl applies.
func (e *Enricher) TTL() time.Duration { return 0 }

// merge sets doc[key] = value (providers.MergeInto).
func merge(doc []byte, key string, value []byte) ([]byte, error) {
	out, err := providers.MergeInto(doc, key, value)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w: %w", providers.ErrUnavailable, err)
	}
	return out, nil
}
