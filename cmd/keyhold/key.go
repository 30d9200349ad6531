package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold/client"
)

func keyCommand() *command {
	return &command{
		name:    "key",
		summary: "manage keys in a built-in vault (like az keyvault key)",
		long: "Key commands speak the Key Vault keys API of the vault named by --vault, with the vault token of\n" +
			"the profile. Private keys never leave the vault: there is no export or backup.",
		examples: []string{
			"keyhold key create --vault kv-contoso --name cmk --kty RSA --size 3072",
			"keyhold key list --vault kv-contoso",
			"keyhold key wrap --vault kv-contoso --name cmk --in cek.bin --out cek.wrapped",
			"keyhold key delete --vault kv-contoso --name cmk",
		},
		subs: []*command{keyCreate(), keyImport(), keyShow(), keyList(), keyVersions(), keyUpdate(), keyDelete(),
			keyRecover(), keyPurge(), keyRotate(), keyWrap("wrap"), keyWrap("unwrap")},
	}
}

// keyFlags are the flags every key command takes.
type keyFlags struct{ vault, name string }

func (k *keyFlags) register(fs *flag.FlagSet, withName bool) {
	fs.StringVar(&k.vault, "vault", "", "vault `NAME`")
	if withName {
		fs.StringVar(&k.name, "name", "", "key `NAME`")
	}
}

func (k *keyFlags) check(args []string, withName bool) error {
	if k.vault == "" {
		return usagef("--vault is required")
	}
	if !withName {
		return noArgs(args)
	}
	name, err := nameArg(k.name, args, "--name")
	k.name = name
	return err
}

// verb completes cmd, a key verb. Its run checks --vault and, if
// withName, the key's --name or argument; runs check (if not nil) before
// anything is sent, signs in and hands the client to do. Errors are those
// steps'.
func (k *keyFlags) verb(cmd *command, withName bool, check func(a *app) error, do func(ctx context.Context, a *app, c *client.Client) error) *command {
	cmd.run = signedIn(func(_ *app, args []string) error { return k.check(args, withName) }, check,
		func(ctx context.Context, a *app, c *client.Client, _ settings) error { return do(ctx, a, c) })
	return cmd
}

// keyOne is the table of one key.
func keyOne(b *client.KeyBundle) table { return keyTable(b) }

func unixTime(u *int64) string {
	if u == nil || *u == 0 {
		return ""
	}
	return time.Unix(*u, 0).UTC().Format(time.RFC3339)
}

func kidName(kid string) string    { return client.KeyItem{KID: kid}.Name() }
func kidVersion(kid string) string { return client.KeyItem{KID: kid}.Version() }

func keyTable(bs ...*client.KeyBundle) table {
	t := table{header: []string{"NAME", "VERSION", "KTY", "ENABLED", "KEY OPS", "EXPIRES", "CREATED"}}
	for _, b := range bs {
		t.rows = append(t.rows, []string{kidName(b.Key.KID), kidVersion(b.Key.KID), b.Key.Kty, yesNo(b.Attributes.Enabled),
			strings.Join(b.Key.KeyOps, ","), unixTime(b.Attributes.Expires), unixTime(b.Attributes.Created)})
	}
	return t
}

func keyItemTable(items []client.KeyItem, versions bool) table {
	t := table{header: []string{"NAME", "ENABLED", "EXPIRES", "CREATED", "UPDATED"}}
	if versions {
		t.header[0] = "VERSION"
	}
	for _, it := range items {
		first := it.Name()
		if versions {
			first = it.Version()
		}
		t.rows = append(t.rows, []string{first, yesNo(it.Attributes.Enabled), unixTime(it.Attributes.Expires),
			unixTime(it.Attributes.Created), unixTime(it.Attributes.Updated)})
	}
	return t
}

// parseTimeFlag reads an RFC 3339 time or a duration from now (+720h).
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(v, "+")); err == nil {
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q must be an RFC 3339 time (2027-01-31T00:00:00Z) or a duration from now (+720h)", name, v)
	}
	return t, nil
}

func keyCreate() *command {
	var k keyFlags
	var kty, curve, nbf, exp string
	var size int
	var ops listFlag
	var disabled bool
	tags := tagFlag{}
	var p client.KeyCreate
	return k.verb(&command{
		name:    "create",
		summary: "create a key, or a new version of it",
		args:    "--vault NAME --name KEY [--kty RSA|EC] [--size BITS] [--curve P-256] [flags]",
		examples: []string{
			"keyhold key create --vault kv-contoso --name cmk",
			"keyhold key create --vault kv-contoso --name signer --kty EC --curve P-384 --ops sign,verify",
			"keyhold key create --vault kv-contoso --name cmk --expires +8760h --tag owner=ops",
		},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, true)
			fs.StringVar(&kty, "kty", "RSA", "key `TYPE`: RSA, EC, RSA-HSM or EC-HSM")
			fs.IntVar(&size, "size", 0, "RSA modulus `BITS`: 2048, 3072 or 4096 (default 2048)")
			fs.StringVar(&curve, "curve", "", "EC `CURVE`: P-256, P-384 or P-521 (default P-256)")
			fs.Var(&ops, "ops", "permitted `OPERATIONS`, comma-separated (default all for the type)")
			fs.StringVar(&nbf, "not-before", "", "activation `TIME` (RFC 3339, or +DURATION from now)")
			fs.StringVar(&exp, "expires", "", "expiry `TIME` (RFC 3339, or +DURATION from now)")
			fs.BoolVar(&disabled, "disabled", false, "create the key disabled")
			fs.Var(tags, "tag", "a `KEY=VALUE` tag; repeat for more")
		},
	}, true, func(a *app) error {
		p = client.KeyCreate{Kty: kty, KeySize: size, Curve: curve, KeyOps: ops, Tags: tags, Disabled: disabled}
		var err error
		if p.NotBefore, err = parseTimeFlag("not-before", nbf, a.now()); err != nil {
			return err
		}
		p.Expires, err = parseTimeFlag("expires", exp, a.now())
		return err
	}, func(ctx context.Context, a *app, c *client.Client) error {
		return printWith(a, keyOne)(c.CreateKey(ctx, k.vault, k.name, p))
	})
}

func keyImport() *command {
	var k keyFlags
	var file string
	var hsm bool
	var ops listFlag
	tags := tagFlag{}
	return &command{
		name:    "import",
		summary: "import a private key from a PEM or JWK file as a new version of a key",
		args:    "--vault NAME --name KEY --file FILE [flags]",
		long: "The file holds a PEM private key (PKCS #8, PKCS #1 or SEC 1) or a JSON Web Key with its private\n" +
			"members. The key goes to the vault and never comes back out.",
		examples: []string{"keyhold key import --vault kv-contoso --name byok --file key.pem"},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, true)
			fs.StringVar(&file, "file", "", "PEM or JWK `FILE` with the private key")
			fs.BoolVar(&hsm, "hsm", false, "import as an HSM-protected key (needs a premium vault and an HSM)")
			fs.Var(&ops, "ops", "permitted `OPERATIONS`, comma-separated (default all for the type)")
			fs.Var(tags, "tag", "a `KEY=VALUE` tag; repeat for more")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if err := k.check(args, true); err != nil {
				return err
			}
			if file == "" {
				return usagef("--file is required")
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("reading the key file: %w", err)
			}
			jwk, err := privateJWK(raw, ops)
			wipeBytes(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			defer wipeBytes(jwk)
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			return printWith(a, keyOne)(c.ImportKey(ctx, k.vault, k.name, jwk, hsm, tags))
		},
	}
}

func wipeBytes(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// privateJWK turns a PEM private key or a JWK file into the JWK JSON the
// vault imports, with key_ops if given.
func privateJWK(raw []byte, ops []string) (json.RawMessage, error) {
	enc := base64.RawURLEncoding.EncodeToString
	var m map[string]any
	if blk, _ := pem.Decode(raw); blk != nil {
		var key any
		var err error
		switch blk.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		default:
			return nil, fmt.Errorf("a PEM block of type %q is not a private key; use PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("the PEM private key does not parse: %w", err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			k.Precompute()
			m = map[string]any{"kty": "RSA", "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes()), "d": enc(k.D.Bytes()),
				"p": enc(k.Primes[0].Bytes()), "q": enc(k.Primes[1].Bytes()),
				"dp": enc(k.Precomputed.Dp.Bytes()), "dq": enc(k.Precomputed.Dq.Bytes()), "qi": enc(k.Precomputed.Qinv.Bytes())}
		case *ecdsa.PrivateKey:
			w := (k.Curve.Params().BitSize + 7) / 8
			crv := map[int]string{256: "P-256", 384: "P-384", 521: "P-521"}[k.Curve.Params().BitSize]
			if crv == "" {
				return nil, errors.New("the EC key's curve is not P-256, P-384 or P-521")
			}
			priv, err := k.Bytes()
			if err != nil {
				return nil, err
			}
			pub, err := k.PublicKey.Bytes()
			if err != nil {
				return nil, err
			}
			m = map[string]any{"kty": "EC", "crv": crv, "x": enc(pub[1 : 1+w]), "y": enc(pub[1+w:]), "d": enc(priv)}
		default:
			return nil, fmt.Errorf("a %T cannot go into a vault; use an RSA or EC key", key)
		}
	} else if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("the file is neither a PEM private key nor a JSON Web Key")
	}
	if _, ok := m["d"]; !ok {
		return nil, errors.New("the key has no private part (d); a vault imports private keys")
	}
	if len(ops) > 0 {
		m["key_ops"] = ops
	}
	return json.Marshal(m)
}

func keyShow() *command {
	var k keyFlags
	var version string
	return k.verb(&command{
		name:     "show",
		summary:  "show a key (its latest version, or --version)",
		args:     "--vault NAME --name KEY [--version V] [flags]",
		examples: []string{"keyhold key show --vault kv-contoso --name cmk", "keyhold key show --vault kv-contoso --name cmk -o json"},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, true)
			fs.StringVar(&version, "version", "", "key `VERSION` (default the latest)")
		},
	}, true, nil, func(ctx context.Context, a *app, c *client.Client) error {
		return printWith(a, keyOne)(c.GetKey(ctx, k.vault, k.name, version))
	})
}

func keyList() *command {
	var k keyFlags
	var deleted bool
	return k.verb(&command{
		name:     "list",
		summary:  "list a vault's keys",
		args:     "--vault NAME [--deleted] [flags]",
		examples: []string{"keyhold key list --vault kv-contoso", "keyhold key list --vault kv-contoso --deleted"},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, false)
			fs.BoolVar(&deleted, "deleted", false, "list soft-deleted keys instead")
		},
	}, false, nil, func(ctx context.Context, a *app, c *client.Client) error {
		list := c.ListKeys
		if deleted {
			list = c.ListDeletedKeys
		}
		items, err := list(ctx, k.vault)
		if err != nil {
			return err
		}
		sort.SliceStable(items, func(i, j int) bool { return strings.ToLower(items[i].Name()) < strings.ToLower(items[j].Name()) })
		return a.print(orEmpty(items), func() table {
			t := keyItemTable(items, false)
			if deleted {
				t.header = append(t.header, "PURGE DATE")
				for i, it := range items {
					t.rows[i] = append(t.rows[i], unixTime(it.ScheduledPurgeDate))
				}
			}
			return t
		})
	})
}

func keyVersions() *command {
	var k keyFlags
	return k.verb(&command{
		name:     "versions",
		summary:  "list the versions of a key",
		args:     "--vault NAME --name KEY [flags]",
		examples: []string{"keyhold key versions --vault kv-contoso --name cmk"},
		flags:    func(fs *flag.FlagSet) { k.register(fs, true) },
	}, true, nil, func(ctx context.Context, a *app, c *client.Client) error {
		return printList(a, func(items []client.KeyItem) table { return keyItemTable(items, true) })(c.ListKeyVersions(ctx, k.vault, k.name))
	})
}

func keyUpdate() *command {
	var k keyFlags
	var version, enabled, nbf, exp string
	var ops listFlag
	tags := tagFlag{}
	var u client.KeyUpdate
	return k.verb(&command{
		name:    "update",
		summary: "change a key version's enabled state, dates, operations or tags",
		args:    "--vault NAME --name KEY [--enabled true|false] [--expires T] [--ops LIST] [flags]",
		examples: []string{
			"keyhold key update --vault kv-contoso --name cmk --enabled false",
			"keyhold key update --vault kv-contoso --name cmk --expires 2027-12-31T00:00:00Z --ops wrapKey,unwrapKey",
		},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, true)
			fs.StringVar(&version, "version", "", "key `VERSION` (default the latest)")
			fs.StringVar(&enabled, "enabled", "", "`true` or false")
			fs.StringVar(&nbf, "not-before", "", "activation `TIME` (RFC 3339, +DURATION, or \"none\")")
			fs.StringVar(&exp, "expires", "", "expiry `TIME` (RFC 3339, +DURATION, or \"none\")")
			fs.Var(&ops, "ops", "permitted `OPERATIONS`, comma-separated")
			fs.Var(tags, "tag", "a `KEY=VALUE` tag, replacing all tags; repeat for more")
		},
	}, true, func(a *app) error {
		switch enabled {
		case "":
		case "true", "false":
			b := enabled == "true"
			u.Enabled = &b
		default:
			return usagef("--enabled must be true or false, not %q", enabled)
		}
		for _, f := range []struct {
			name, val string
			dst       **time.Time
		}{{"not-before", nbf, &u.NotBefore}, {"expires", exp, &u.Expires}} {
			if f.val == "" {
				continue
			}
			t := time.Time{}
			if f.val != "none" {
				var err error
				if t, err = parseTimeFlag(f.name, f.val, a.now()); err != nil {
					return err
				}
			}
			*f.dst = &t
		}
		if ops != nil {
			u.KeyOps = ops
		}
		if len(tags) > 0 {
			u.Tags = tags
		}
		if u.Enabled == nil && u.NotBefore == nil && u.Expires == nil && u.KeyOps == nil && u.Tags == nil {
			return usagef("nothing to change: give --enabled, --not-before, --expires, --ops or --tag")
		}
		return nil
	}, func(ctx context.Context, a *app, c *client.Client) error {
		return printWith(a, keyOne)(c.UpdateKey(ctx, k.vault, k.name, version, u))
	})
}

func keyDelete() *command {
	return keyVerb("delete", "soft-delete a key (recoverable until its purge date)", (*client.Client).DeleteKey,
		func(a *app, k keyFlags, b *client.KeyBundle) error {
			if a.g.output == "json" {
				return writeJSON(a.stdout, b)
			}
			a.say("Deleted key %s; it can be recovered until %s.", k.name, unixTime(b.ScheduledPurgeDate))
			return nil
		})
}

func keyRecover() *command {
	return keyVerb("recover", "recover a soft-deleted key", (*client.Client).RecoverKey, printKey)
}

func keyRotate() *command {
	return keyVerb("rotate", "make a new version of a key", (*client.Client).RotateKey, printKey)
}

// keyVerb is a key command that takes only --vault and --name, calls op on
// that key and hands the key op returns to show.
func keyVerb(name, summary string, op func(*client.Client, context.Context, string, string) (*client.KeyBundle, error),
	show func(a *app, k keyFlags, b *client.KeyBundle) error) *command {
	var k keyFlags
	return k.verb(&command{
		name:     name,
		summary:  summary,
		args:     "--vault NAME --name KEY [flags]",
		examples: []string{"keyhold key " + name + " --vault kv-contoso --name cmk"},
		flags:    func(fs *flag.FlagSet) { k.register(fs, true) },
	}, true, nil, func(ctx context.Context, a *app, c *client.Client) error {
		b, err := op(c, ctx, k.vault, k.name)
		if err != nil {
			return err
		}
		return show(a, k, b)
	})
}

// printKey prints a key as JSON or as a one-row table.
func printKey(a *app, _ keyFlags, b *client.KeyBundle) error {
	return a.print(b, func() table { return keyTable(b) })
}

func keyPurge() *command {
	var k keyFlags
	var yes bool
	return k.verb(&command{
		name:     "purge",
		summary:  "purge a soft-deleted key for good",
		args:     "--vault NAME --name KEY [--yes] [flags]",
		long:     "Without --yes, purge asks for confirmation on the terminal, and refuses to run without one.",
		examples: []string{"keyhold key purge --vault kv-contoso --name cmk --yes"},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, true)
			yesFlag(fs, &yes)
		},
	}, true, func(a *app) error {
		return a.mayDestroy(yes, "key purge", fmt.Sprintf("Purge key %s from vault %s for good?", k.name, k.vault),
			fmt.Sprintf("key %s was not purged", k.name))
	}, func(ctx context.Context, a *app, c *client.Client) error {
		if err := c.PurgeKey(ctx, k.vault, k.name); err != nil {
			return err
		}
		a.say("Purged key %s.", k.name)
		return nil
	})
}

// keyWrap is "key wrap" or "key unwrap".
func keyWrap(verb string) *command {
	var k keyFlags
	var version, alg, value, in, out string
	what := map[string]string{"wrap": "wrap a key (such as a data encryption key) with a vault key",
		"unwrap": "unwrap a wrapped key with a vault key"}[verb]
	return &command{
		name:    verb,
		summary: what,
		args:    "--vault NAME --name KEY (--value B64URL | --in FILE) [--out FILE] [flags]",
		long: "The input is --value (base64url) or the raw bytes of --in. The result is printed as base64url,\n" +
			"or written raw to --out (mode 0600).",
		examples: []string{
			"keyhold key " + verb + " --vault kv-contoso --name cmk --value AAECAwQFBgcICQoLDA0ODw",
			"keyhold key " + verb + " --vault kv-contoso --name cmk --in cek.bin --out cek.out",
		},
		flags: func(fs *flag.FlagSet) {
			k.register(fs, true)
			fs.StringVar(&version, "version", "", "key `VERSION` (default the latest)")
			fs.StringVar(&alg, "alg", "RSA-OAEP-256", "`ALGORITHM`: RSA-OAEP-256, RSA-OAEP or RSA1_5")
			fs.StringVar(&value, "value", "", "input as `BASE64URL`")
			fs.StringVar(&in, "in", "", "read the input's raw bytes from `FILE`")
			fs.StringVar(&out, "out", "", "write the result's raw bytes to `FILE`")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if err := k.check(args, true); err != nil {
				return err
			}
			var data []byte
			switch {
			case (value == "") == (in == ""):
				return usagef("give exactly one of --value and --in")
			case in != "":
				b, err := os.ReadFile(in)
				if err != nil {
					return fmt.Errorf("reading --in: %w", err)
				}
				data = b
			default:
				b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
				if err != nil {
					return usagef("--value is not base64url: %v", err)
				}
				data = b
			}
			defer wipeBytes(data)
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			op := c.WrapKey
			if verb == "unwrap" {
				op = c.UnwrapKey
			}
			res, err := op(ctx, k.vault, k.name, version, alg, data)
			if err != nil {
				return err
			}
			defer wipeBytes(res.Value)
			if out != "" {
				if err := os.WriteFile(out, res.Value, 0o600); err != nil {
					return fmt.Errorf("writing --out: %w", err)
				}
				a.say("Wrote %d bytes to %s (key %s).", len(res.Value), out, res.KID)
				if a.g.output == "json" {
					return writeJSON(a.stdout, map[string]string{"kid": res.KID, "out": out})
				}
				return nil
			}
			v := map[string]string{"kid": res.KID, "value": base64.RawURLEncoding.EncodeToString(res.Value)}
			return a.print(v, func() table {
				return table{header: []string{"KID", "VALUE"}, rows: [][]string{{v["kid"], v["value"]}}}
			})
		},
	}
}
