//go:build keyhold_serve

// The serve command lives in serve.go, which the server's engineer owns. This
// file wires it into the command tree; the build tag keeps the binary
// building until serve.go lands, and goes away then.

package main

func init() {
	extraCommands = append(extraCommands, func() *command {
		return &command{
			name:     "serve",
			summary:  "run the Keyhold server",
			examples: []string{"keyhold serve", "keyhold serve --help"},
			raw:      cmdServe,
		}
	})
}
