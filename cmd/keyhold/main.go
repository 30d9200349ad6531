// Command keyhold runs the Keyhold server (keyhold serve) and is the command
// line client of its APIs: keyhold <noun> <verb> [flags]. Client commands
// only speak HTTPS to a server; none of them touches the database.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	a := &app{
		stdin:          os.Stdin,
		stdout:         os.Stdout,
		stderr:         os.Stderr,
		getenv:         os.Getenv,
		now:            time.Now,
		stdinTerminal:  term.IsTerminal(int(os.Stdin.Fd())),
		stderrTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	}
	a.readSecret = a.readTerminalSecret
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
)

// app is one run of the command line, with its I/O and environment
// injectable for tests.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	stdinTerminal  bool
	stderrTerminal bool
	// readSecret reads a line from the terminal without echo.
	readSecret func(prompt string) (string, error)
	// httpClient replaces the client built from the CA file (tests).
	httpClient *http.Client
	// pollInterval overrides the client's wait between polls (tests).
	pollInterval time.Duration

	g globals
}

// globals are the flags every command takes.
type globals struct {
	server, caCert, tenant, subscription, output string
	clientID, clientSecret, username, password   string
}

// globalFlags registers the global flags on fs.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "", "server `URL`, such as https://127.0.0.1:8443/ (env KEYHOLD_SERVER)")
	fs.StringVar(&g.caCert, "ca-cert", "", "PEM `FILE` of the CA that signed the server's certificate (env KEYHOLD_CA_CERT)")
	fs.StringVar(&g.tenant, "tenant", "", "tenant `ID` (env KEYHOLD_TENANT)")
	fs.StringVar(&g.subscription, "subscription", "", "subscription `ID` (env KEYHOLD_SUBSCRIPTION)")
	fs.StringVar(&g.output, "output", "", "output `FORMAT`: table or json")
	fs.StringVar(&g.output, "o", "", "short for --output")
	fs.StringVar(&g.clientID, "client-id", "", "service principal client `ID` (env KEYHOLD_CLIENT_ID)")
	fs.StringVar(&g.clientSecret, "client-secret", "", "service principal client `SECRET` (env KEYHOLD_CLIENT_SECRET)")
	fs.StringVar(&g.username, "username", "", "user principal `NAME` (env KEYHOLD_USERNAME)")
	fs.StringVar(&g.password, "password", "", "user `PASSWORD` (env KEYHOLD_PASSWORD)")
}

// globalValueFlags are the global flags that take a value, so that the
// dispatcher can skip "--server URL" before the command words.
var globalValueFlags = map[string]bool{
	"server": true, "ca-cert": true, "tenant": true, "subscription": true, "output": true, "o": true,
	"client-id": true, "client-secret": true, "username": true, "password": true,
}

// command is a node of the command tree: a noun with sub-commands, or a verb
// that runs.
type command struct {
	name     string
	summary  string   // one line, for the parent's list
	args     string   // what follows the command path in the usage line
	long     string   // more words for --help
	examples []string // full command lines
	flags    func(fs *flag.FlagSet)
	run      func(ctx context.Context, a *app, args []string) error
	// raw commands parse their own arguments (serve).
	raw  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	subs []*command
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// root returns the command tree.
func root() *command {
	r := &command{
		name:    "keyhold",
		summary: "customer-managed encryption keys for multi-tenant data platforms",
		args:    "<command> [flags]",
		long: "Each command is a client of a Keyhold server's HTTPS APIs. Sign in once with 'keyhold login';\n" +
			"the server, tenant, CA and tokens are kept in a profile ($KEYHOLD_CONFIG, else\n" +
			"$XDG_CONFIG_HOME/keyhold/profile.json). Flags win over environment variables, which win over the profile.",
		examples: []string{
			"keyhold login --bootstrap keyhold-data/bootstrap.json",
			"keyhold group create --name rg-contoso --location westus",
			"keyhold provider register --namespace Microsoft.PowerPlatform --wait",
			"keyhold user list -o json",
		},
		subs: []*command{
			loginCommand(), logoutCommand(),
			graphCommand(),
			userCommand(), spCommand(), groupCommand(), providerCommand(), featureCommand(),
			roleCommand(), auditCommand(), versionCommand(), vaultCommand(), keyCommand(),
			policyCommand(), deployCommand(), dataCommand(), envCommand(), quickstartCommand(), dutiesCommand(),
			// serve.go (the server's) parses its own flags and prints its own help.
			{name: "serve", summary: "run the Keyhold server", raw: cmdServe},
		},
	}
	sort.SliceStable(r.subs, func(i, j int) bool { return r.subs[i].name < r.subs[j].name })
	return r
}

// usageError is a mistake on the command line; it exits with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// noArgs refuses positional arguments for commands that take none.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// run runs the command line args and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	r := root()
	// "keyhold help user create" is "keyhold user create --help".
	if len(args) > 0 && args[0] == "help" {
		args = append(args[1:], "--help")
	}
	cmd, path, flagArgs, rest, err := resolve(r, args)
	if err != nil {
		return a.fail(err)
	}
	if cmd.raw != nil {
		return a.failPlain(cmd.raw(ctx, append(flagArgs, rest...), a.stdout, a.stderr))
	}
	if cmd.run == nil {
		// A noun without a verb.
		if hasHelp(flagArgs) {
			printUsage(a.stdout, cmd, path, nil)
			return exitOK
		}
		printUsage(a.stderr, cmd, path, nil)
		if len(path) == 1 {
			return exitUsage
		}
		return a.fail(usagef("%s: missing command; see the list above", strings.Join(path, " ")))
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	a.g = globals{}
	a.g.register(fs)
	pos, err := parseInterleaved(fs, append(flagArgs, rest...))
	if errors.Is(err, flag.ErrHelp) {
		printUsage(a.stdout, cmd, path, fs)
		return exitOK
	}
	if err != nil {
		return a.fail(usagef("%s: %s", strings.Join(path, " "), strings.TrimPrefix(err.Error(), "flag provided but not defined: ")+hint(err)))
	}
	if err := a.resolveOutput(); err != nil {
		return a.fail(err)
	}
	return a.fail(cmd.run(ctx, a, pos))
}

// hint adds words to the flag package's errors where they are terse.
func hint(err error) string {
	if strings.HasPrefix(err.Error(), "flag provided but not defined") {
		return " is not a flag of this command"
	}
	return ""
}

// resolve walks args down the command tree. It returns the command, its
// path, the flags seen before the command words, and the words after them.
func resolve(r *command, args []string) (cmd *command, path []string, flagArgs, rest []string, err error) {
	cmd, path = r, []string{r.name}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if cmd.run != nil || cmd.raw != nil {
			return cmd, path, flagArgs, args[i:], nil
		}
		if strings.HasPrefix(arg, "-") && arg != "-" {
			flagArgs = append(flagArgs, arg)
			name := strings.TrimLeft(arg, "-")
			if globalValueFlags[name] && i+1 < len(args) {
				i++
				flagArgs = append(flagArgs, args[i])
			}
			continue
		}
		next := cmd.sub(arg)
		if next == nil {
			return nil, nil, nil, nil, usagef("unknown command %q; run '%s --help' for the list", strings.Join(append(path[1:], arg), " "), strings.Join(path, " "))
		}
		cmd, path = next, append(path, arg)
	}
	return cmd, path, flagArgs, nil, nil
}

func hasHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// parseInterleaved parses flags that may come before, between and after
// positional arguments, and returns the positional ones. "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return pos, nil
		}
		// The flag package consumes a "--" it stops at; what follows is all
		// positional.
		if i := len(args) - len(left); i > 0 && args[i-1] == "--" {
			return append(pos, left...), nil
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

// resolveOutput checks the output format.
func (a *app) resolveOutput() error {
	switch a.g.output {
	case "":
		a.g.output = "table"
	case "table", "json":
	default:
		return usagef("--output must be table or json, not %q", a.g.output)
	}
	return nil
}

// fail prints err as "keyhold: <message>" and returns the exit code.
func (a *app) fail(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "keyhold: %s\n", oneLine(ue.msg))
		return exitUsage
	}
	return a.failPlain(err)
}

func (a *app) failPlain(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(a.stderr, "keyhold: %s\n", oneLine(errorMessage(err)))
	if id := requestIDOf(err); id != "" {
		fmt.Fprintf(a.stderr, "keyhold: request id %s (quote it when asking for support)\n", id)
	}
	return exitError
}

// oneLine keeps an error on one line of the terminal.
func oneLine(s string) string {
	return strings.Join(strings.Fields(sanitize(s)), " ")
}

// printUsage writes the help of cmd: usage line, description, commands or
// flags, examples.
func printUsage(w io.Writer, cmd *command, path []string, fs *flag.FlagSet) {
	args := cmd.args
	if args == "" && cmd.subs != nil {
		args = "<command> [flags]"
	}
	if args == "" {
		args = "[flags]"
	}
	fmt.Fprintf(w, "Usage: %s %s\n\n", strings.Join(path, " "), args)
	if cmd.summary != "" {
		fmt.Fprintf(w, "%s%s.\n", strings.ToUpper(cmd.summary[:1]), cmd.summary[1:])
	}
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.long)
	}
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, s := range cmd.subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		tw.Flush()
	}
	if fs != nil {
		var own, global []*flag.Flag
		var g globals
		gfs := flag.NewFlagSet("", flag.ContinueOnError)
		g.register(gfs)
		fs.VisitAll(func(f *flag.Flag) {
			if gfs.Lookup(f.Name) != nil {
				global = append(global, f)
			} else {
				own = append(own, f)
			}
		})
		if len(own) > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			printFlags(w, own)
		}
		fmt.Fprintf(w, "\nGlobal flags:\n")
		printFlags(w, global)
	}
	if len(cmd.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range cmd.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags.\n", strings.Join(path, " "))
	}
}

func printFlags(w io.Writer, flags []*flag.Flag) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, f := range flags {
		if f.Name == "o" {
			continue // shown with --output
		}
		name, usage := flag.UnquoteUsage(f)
		dash := "--" + f.Name
		if f.Name == "output" {
			dash = "-o, --output"
		}
		if name != "" {
			dash += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", dash, usage)
	}
	tw.Flush()
}

// readTerminalSecret prompts on stderr and reads a line from the terminal
// without echo. Without a terminal it fails, rather than hang on a pipe.
func (a *app) readTerminalSecret(prompt string) (string, error) {
	if !a.stdinTerminal {
		return "", errors.New("no terminal to ask on")
	}
	fmt.Fprint(a.stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// confirm asks a yes/no question on the terminal; the answer is no unless
// the user types y or yes.
func (a *app) confirm(question string) bool {
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func versionCommand() *command {
	return &command{
		name:     "version",
		summary:  "print the version of this keyhold binary",
		examples: []string{"keyhold version", "keyhold version -o json"},
		run: func(ctx context.Context, a *app, args []string) error {
			if len(args) > 0 {
				return usagef("version takes no arguments")
			}
			v := struct {
				Version   string `json:"version"`
				GoVersion string `json:"goVersion"`
			}{Version: buildVersion()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				v.GoVersion = bi.GoVersion
			}
			return a.print(v, func() table {
				return table{header: []string{"VERSION", "GO"}, rows: [][]string{{v.Version, v.GoVersion}}}
			})
		},
	}
}

// buildVersion returns the version set at link time, else the module's.
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
