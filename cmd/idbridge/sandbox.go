package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/idbridge/idbridge/spotnana"
)

// cmdSandbox serves spotnana.Sandbox, a local stand-in for Spotnana's token endpoint,
// until SIGINT or SIGTERM. It prints the bound address on stdout so that a caller that
// asked for port 0 (tests, scripts) learns the real one.
func cmdSandbox(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sandbox", stderr)
	cfg := spotnana.SandboxFlags(fs)
	logFormat := fs.String("log-format", "text", "log format on stderr: text | json")
	if !parseArgs(fs, args) {
		return exitUsage
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 {
		fmt.Fprintln(stderr, "idbridge sandbox: --fail-rate must be within 0..1")
		return exitUsage
	}
	if cfg.Mode != "" && cfg.Mode != spotnana.SandboxModeCallback && cfg.Mode != spotnana.SandboxModeJWKS {
		fmt.Fprintln(stderr, "idbridge sandbox: --mode must be callback or jwks")
		return exitUsage
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	logger := slog.New(h)
	cfg.Logger = logger
	cfg.HTTPClient = &http.Client{Timeout: cfg.CallbackTimeout + time.Second}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "idbridge sandbox: %v\n", err)
		return exitRuntime
	}
	sb := spotnana.NewSandbox(*cfg)
	users := len(cfg.Users)
	fmt.Fprintf(stdout, "sandbox listening on http://%s (mode %s, token endpoint %s, %d users)\n",
		ln.Addr(), sb.Mode(), spotnana.SandboxTokenPath, users)

	if users == 0 {
		fmt.Fprintln(stdout, "no --users given: every exchange will be refused with "+spotnana.CodeUserNotFound+" (use --users '*' to admit any email)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.EmbedListen != "" {
		eln, err := net.Listen("tcp", cfg.EmbedListen)
		if err != nil {
			fmt.Fprintf(stderr, "idbridge sandbox: --embed-listen: %v\n", err)
			return exitRuntime
		}
		embed := sb.Embed(cfg.EmbedAllowedOrigins)
		fmt.Fprintf(stdout, "embed page on http://%s%s (Spotnana's iframe; allowed page origins: %s; counters at %s)\n",
			eln.Addr(), spotnana.SandboxEmbedPath, strings.Join(embed.AllowedOrigins(), " "), spotnana.SandboxStatsPath)
		go func() {
			if err := serveHandler(ctx, eln, embed, logger); err != nil {
				logger.Error("sandbox embed page stopped", "error", err)
			}
		}()
	}
	if err := serveHandler(ctx, ln, sb, logger); err != nil {
		logger.Error("sandbox stopped", "error", err)
		return exitRuntime
	}
	return exitOK
}

// serveHandler serves h on ln until ctx is done, then shuts down within five seconds.
func serveHandler(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
