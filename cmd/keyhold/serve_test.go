package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/unitenv"
)

func TestServeHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := cmdServe(context.Background(), []string{"--help"}, &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage: keyhold serve", "-listen", "-data-dir", "-database-url", "-hostname", "-public-url",
		"-master-key-file", "-tls-cert", "-tls-key", "-profile", "-registration-delay", "-token-lifetime", "-vault-domain", "-log-level",
		"KEYHOLD_MASTER_KEY", "bootstrap.json"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("--help also wrote to stderr: %s", stderr.String())
	}
}

func TestServeBadCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--profile", "beta", "--data-dir", "DIR"}, "--profile"},
		{[]string{"--listen", "nonsense", "--data-dir", "DIR"}, "--listen"},
		{[]string{"--token-lifetime", "soon"}, "token-lifetime"},
		{[]string{"--vault-domain", "https://vault.example.test", "--data-dir", "DIR"}, "--vault-domain"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			for i, a := range tt.args {
				if a == "DIR" {
					tt.args[i] = dir
				}
			}
			var stdout, stderr bytes.Buffer
			err := cmdServe(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestServeRunsAndStops(t *testing.T) {
	t.Setenv("KEYHOLD_MASTER_KEY", "")
	t.Setenv("KEYHOLD_DATABASE_URL", "")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &unitenv.Buffer{}, &unitenv.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- cmdServe(ctx, []string{"--listen", "127.0.0.1:0", "--data-dir", dir, "--hostname", "keyhold.test,10.9.8.7", "--profile", "preview",
			"--vault-domain", "Vault.Keyhold.Test"}, stdout, stderr)
	}()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(stdout.String(), "Bootstrap file:") {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, stderr)
		case <-deadline:
			t.Fatalf("serve did not start:\n%s", stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if want := filepath.Join(dir, "bootstrap.json"); !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout does not say where bootstrap.json is: %s", stdout)
	}
	if !regexp.MustCompile(`Vault URLs: +https://<vault>\.vault\.keyhold\.test:[0-9]+/ \(\*\.vault\.keyhold\.test must resolve`).MatchString(stdout.String()) {
		t.Errorf("stdout does not show host-style vault URLs: %s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "bootstrap.json")); err != nil {
		t.Error(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve = %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"msg":"keyhold is listening"`) || !strings.Contains(logs, `"profile":"preview"`) {
		t.Errorf("the JSON log lacks the start line: %s", logs)
	}
	if !strings.Contains(stdout.String(), "Keyhold stopped") {
		t.Errorf("stdout lacks the stop line: %s", stdout)
	}
}
