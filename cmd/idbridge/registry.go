package main

import (
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection"
	"github.com/idbridge/idbridge/providers/jwt"
	"github.com/idbridge/idbridge/providers/ldap"
	"github.com/idbridge/idbridge/providers/rest"
	"github.com/idbridge/idbridge/providers/userinfo"
)

// registry is the one place that names every provider type, enrichment step and the
// owner of directories:. Each package declares what the core must know about it (its
// secret keys, its warnings) in its registration.
func registry() providers.Registry {
	return providers.Registry{
		Types: map[string]providers.Type{
			jwt.Type:           jwt.Registration(),
			introspection.Type: introspection.Registration(),
			userinfo.Type:      userinfo.Registration(),
			ldap.Type:          ldap.Registration(),
		},
		Steps: []providers.Step{
			ldap.LookupStep(),
			userinfo.Step(),
			rest.Step(),
		},
		Directories: ldap.DirectoriesRegistration(),
	}
}
