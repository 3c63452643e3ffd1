package server

import (
	"github.com/gin-gonic/gin"
)

// failExchange answers errors of the exchange step; it reports false for any other error.
func (s *Server) failExchange(c *gin.Context, err error) bool {
	return false
}

func exchangeOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	return "error"
}
