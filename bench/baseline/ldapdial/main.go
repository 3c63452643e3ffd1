// Command ldapdial is the LDAP scenario's baseline: the same lookup idbridge's
// `type: ldap` provider does (the token's SHA-256 in a filter), but on a new connection
// per request: dial, bind as the service account, search, close. idbridge's pool is
// measured against it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-ldap/ldap/v3"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8083", "address to serve on")
	url := flag.String("url", "", "ldap:// URL")
	bindDN := flag.String("bind-dn", "", "service account DN")
	bindPW := flag.String("bind-password", "", "service account password")
	base := flag.String("base", "", "search base")
	flag.Parse()

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.GET("/v1/user-detail", func(c *gin.Context) {
		tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok {
			c.Status(http.StatusUnauthorized)
			return
		}
		sum := sha256.Sum256([]byte(tok))
		conn, err := ldap.DialURL(*url)
		if err != nil {
			c.Status(http.StatusServiceUnavailable)
			return
		}
		defer conn.Close()
		conn.SetTimeout(5 * time.Second)
		if err := conn.Bind(*bindDN, *bindPW); err != nil {
			c.Status(http.StatusServiceUnavailable)
			return
		}
		res, err := conn.Search(ldap.NewSearchRequest(*base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 5, false,
			"(&(objectClass=person)(apiTokenHash="+hex.EncodeToString(sum[:])+"))", []string{"mail", "uid"}, nil))
		if err != nil || len(res.Entries) != 1 {
			c.Status(http.StatusUnauthorized)
			return
		}
		c.Data(http.StatusOK, "application/json",
			[]byte(`{"user":{"email":`+strconv.Quote(res.Entries[0].GetAttributeValue("mail"))+"}}\n"))
	})
	log.Fatal(http.ListenAndServe(*listen, e))
}
