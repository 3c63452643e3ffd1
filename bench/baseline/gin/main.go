// Command gin is the load benchmark's floor: a bare Gin engine answering user-detail
// with a constant JSON body, no logging, no middleware. Everything idbridge does per
// request is measured against what this costs.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/gin-gonic/gin"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	body := []byte(`{"user":{"email":"alice@example.com"}}` + "\n")
	e.GET("/v1/user-detail", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", body) })
	log.Fatal(http.ListenAndServe(*listen, e))
}
