package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/spotnana"
	"github.com/idbridge/idbridge/web"
	"github.com/idbridge/idbridge/web/demoapp"
)

// demoOrgID is the orgId the demo page gives Spotnana's iframe.
const demoOrgID = "example-corp"

// appOrigin is the browser origin of the company page on ln: localhost, as Spotnana's
// default development origin http://localhost:3000 is written.
func appOrigin(ln net.Listener) string {
	return fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
}

// demoMint mints the demo users' tokens: alice and bob (both with Spotnana profiles),
// carol (a user Spotnana does not know), and alice's token of an hour ago (expired).
func demoMint(issuer *demoissuer.Issuer) func(user string) (string, error) {
	return func(user string) (string, error) {
		claims := map[string]any{"sub": "alice", "aud": "idbridge", "email": demoUser, "email_verified": true, "scope": "openid email"}
		switch user {
		case "bob":
			claims["sub"], claims["email"] = "bob", demoUser2
		case "carol":
			claims["sub"], claims["email"] = "carol", "carol@example.com"
		case "expired":
			now := time.Now()
			claims["iat"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}
		return issuer.Mint(claims)
	}
}

// serveBrowserHalf serves the sandbox's iframe on embedLn and the company page on appLn
// until ctx is done; done receives both servers' ends.
func serveBrowserHalf(ctx context.Context, sb *spotnana.Sandbox, issuer *demoissuer.Issuer, embedLn, appLn net.Listener, bridgeURL, exchangePath string, logger *slog.Logger) (embedURL, pageURL string, done func(), err error) {
	embed := sb.Embed([]string{appOrigin(appLn)})
	embedURL = "http://" + embedLn.Addr().String() + spotnana.SandboxEmbedPath
	app, err := demoapp.New(demoapp.Config{
		BridgeURL:    bridgeURL,
		ExchangePath: exchangePath,
		ScriptPath:   web.ScriptPath,
		ScriptSRI:    web.SRI(),
		EmbedURL:     embedURL,
		OrgID:        demoOrgID,
		Mint:         demoMint(issuer),
	})
	if err != nil {
		return "", "", nil, err
	}
	errs := make(chan error, 2)
	go func() { errs <- serveHandler(ctx, embedLn, embed, logger) }()
	go func() { errs <- serveHandler(ctx, appLn, app, logger) }()
	return embedURL, appOrigin(appLn) + "/", func() { <-errs; <-errs }, nil
}
