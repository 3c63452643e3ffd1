// Command jwtverify is the load benchmark's crypto floor: Gin plus golang-jwt verifying
// an RS256 bearer token on every request (issuer, audience, expiry), with no cache,
// no policy and no logging, answering {"user":{"email":…}} from the email claim.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to serve on")
	pemFile := flag.String("pem", "", "PEM file with the issuer's RSA public key")
	issuer := flag.String("issuer", "", "expected iss")
	audience := flag.String("audience", "idbridge", "expected aud")
	admin := flag.String("admin", "", "address for /debug/pprof/ (bench -pprof); none by default")
	flag.Parse()
	raw, err := os.ReadFile(*pemFile)
	if err != nil {
		log.Fatal(err)
	}
	key, err := jwt.ParseRSAPublicKeyFromPEM(raw)
	if err != nil {
		log.Fatal(err)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(*issuer),
		jwt.WithAudience(*audience),
		jwt.WithExpirationRequired(),
	)
	keyFunc := func(*jwt.Token) (any, error) { return key, nil }

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.GET("/v1/user-detail", func(c *gin.Context) {
		tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok {
			c.Status(http.StatusUnauthorized)
			return
		}
		claims := jwt.MapClaims{}
		if _, err := parser.ParseWithClaims(tok, claims, keyFunc); err != nil {
			c.Status(http.StatusUnauthorized)
			return
		}
		email, _ := claims["email"].(string)
		c.Data(http.StatusOK, "application/json", []byte(`{"user":{"email":`+strconv.Quote(email)+"}}\n"))
	})
	if *admin != "" {
		// The same profiles idbridge's admin listener gives, so that bench -pprof can
		// compare the two under one load.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { log.Fatal(http.ListenAndServe(*admin, mux)) }()
	}
	log.Fatal(http.ListenAndServe(*listen, e))
}
