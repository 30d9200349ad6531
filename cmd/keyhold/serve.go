package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyhold/keyhold/masterkey"
	"github.com/keyhold/keyhold/server"
)

const serveUsage = `Usage: keyhold serve [flags]

Runs the Keyhold server: the identity platform (tokens, OpenID metadata), the
resource manager, the directory API and the audit log, on one HTTPS address.

On the first start it creates, in the data directory:
  keyhold.db       the SQLite database (unless --database-url names PostgreSQL)
  master.key       the master key that seals every secret at rest (mode 0600;
                   back it up, or give your own with --master-key-file or
                   KEYHOLD_MASTER_KEY)
  ca.pem           the CA certificate clients must trust (unless --tls-cert)
  bootstrap.json   the tenant, subscription, endpoints and first credentials
                   (mode 0600; the secrets in it are shown only once)

Flags:
`

const serveExamples = `
Environment:
  KEYHOLD_MASTER_KEY    the master key, base64 (instead of a file)
  KEYHOLD_DATABASE_URL  the default of --database-url; prefer it to the flag,
                        which other users can see in the process list

Examples:
  keyhold serve
  keyhold serve --listen 0.0.0.0:8443 --hostname keyhold.example --public-url https://keyhold.example:8443/
  keyhold serve --public-url https://keyhold.example:8443/ --vault-domain vault.keyhold.example
      vault URLs become https://<vault>.vault.keyhold.example:8443/; point a wildcard
      DNS record *.vault.keyhold.example (or /etc/hosts lines) at the server
  KEYHOLD_DATABASE_URL=postgres://keyhold@db/keyhold keyhold serve --master-key-file /etc/keyhold/master.key
`

// hostnames is a repeatable, comma-separable --hostname flag.
type hostnames []string

func (h *hostnames) String() string { return strings.Join(*h, ",") }

func (h *hostnames) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*h = append(*h, p)
		}
	}
	return nil
}

// cmdServe parses the flags of "keyhold serve" and runs the server until
// SIGINT or SIGTERM (or ctx) stops it, then shuts down gracefully. It returns
// nil for --help, an error naming the flag for a bad command line, and the
// server's error if it cannot start or stops on its own.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	// Parse prints nothing: help goes to stdout below, errors come back
	// as the returned error.
	fs.SetOutput(io.Discard)
	var (
		cfg      server.Config
		hosts    hostnames
		logLevel string
	)
	fs.StringVar(&cfg.Listen, "listen", server.DefaultListen, "`ADDRESS` to listen on, host:port")
	fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "`DIR` for the database, master key, CA certificate and bootstrap.json")
	fs.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("KEYHOLD_DATABASE_URL"), "PostgreSQL `URL`; empty means SQLite in the data directory")
	fs.Var(&hosts, "hostname", "extra `NAME` or IP for the server certificate (repeatable, or comma-separated)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the server's `URL` as clients see it (default https://<listen address>/)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "`FILE` with the base64 master key (default: $"+masterkey.EnvVar+", else DATA_DIR/master.key)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate chain `FILE` to serve instead of the generated one")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key `FILE` for --tls-cert")
	fs.StringVar(&cfg.Profile, "profile", server.ProfileDefault, "`PROFILE`: default, or preview to turn on preview features")
	fs.DurationVar(&cfg.RegistrationDelay, "registration-delay", 0, "how long provider and feature registrations stay Registering (`DURATION`, such as 10s)")
	fs.DurationVar(&cfg.TokenLifetime, "token-lifetime", server.DefaultTokenLifetime, "lifetime of access tokens (`DURATION`)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long to wait for requests in flight at shutdown (`DURATION`)")
	fs.StringVar(&cfg.VaultDomain, "vault-domain", "", "serve host-style vault URLs https://<vault>.`DOMAIN`[:port]/ (as Azure's <vault>.vault.azure.net), so that Azure SDK clients parse key ids and keep challenge resource verification on; *.DOMAIN must resolve to this server and the generated certificate covers it (default: path-style <public URL>/vaults/<vault>/, which keep working)")
	fs.BoolVar(&cfg.SeparationOfDuties, "separation-of-duties", false, "refuse, in every tenant, any grant that makes one principal both a key vault administrator and a platform administrator (a tenant can also turn it on with 'keyhold duties enforce')")
	fs.StringVar(&logLevel, "log-level", "info", "`LEVEL` of the JSON log on stderr: debug, info, warn or error")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, serveUsage)
		fs.PrintDefaults()
		fmt.Fprint(out, serveExamples)
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil
		}
		return fmt.Errorf("serve: %v (see keyhold serve --help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q (see keyhold serve --help)", fs.Arg(0))
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("serve: --log-level %q must be debug, info, warn or error", logLevel)
	}
	cfg.Hostnames = hosts

	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cfg.OnReady = func(s *server.Server) {
		fmt.Fprintf(stdout, "Keyhold is listening on %s (%s)\n", s.URL(), s.Addr())
		fmt.Fprintf(stdout, "CA certificate: %s\n", s.CAFile())
		if d := s.Vault().VaultDomain(); d != "" {
			fmt.Fprintf(stdout, "Vault URLs:     %s (*.%s must resolve to this server)\n", s.Vault().VaultURI("<vault>"), d)
		}
		if _, err := os.Stat(s.BootstrapFile()); err != nil {
			// Another server of a shared database bootstrapped it, or the
			// file was removed: its secrets were shown once, elsewhere.
			fmt.Fprintf(stdout, "Bootstrap file: none in this data directory (the server that bootstrapped the database holds it)\n")
			return
		}
		fmt.Fprintf(stdout, "Bootstrap file: %s\n", s.BootstrapFile())
		fmt.Fprintf(stdout, "Sign in with:   keyhold login --bootstrap %s\n", s.BootstrapFile())
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err := server.Run(ctx, cfg, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Keyhold stopped after %s\n", time.Since(start).Round(time.Second))
	return nil
}
