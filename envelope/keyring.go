package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keyhold/keyhold"
)

// Details of the errors Keyring.Get returns for a generation it cannot give.
const (
	DetailGenerationNotFound  = "RootKeyGenerationNotFound"
	DetailGenerationDestroyed = "RootKeyGenerationDestroyed"
	DetailKeysWiped           = "RootKeysWiped"
)

// Unwrapper unwraps the wrapped root key of a generation, typically by
// asking the vault that holds the key named in g.WrappedBy. The kms package
// provides one for every kms.Wrapper.
type Unwrapper interface {
	Unwrap(ctx context.Context, g *keyhold.RootKeyGeneration) (keyhold.Secret, error)
}

// UnwrapperFunc adapts a function to Unwrapper.
type UnwrapperFunc func(ctx context.Context, g *keyhold.RootKeyGeneration) (keyhold.Secret, error)

// Unwrap calls f.
func (f UnwrapperFunc) Unwrap(ctx context.Context, g *keyhold.RootKeyGeneration) (keyhold.Secret, error) {
	return f(ctx, g)
}

// Generations lists an environment's root-key generations;
// keyhold.EnvironmentStore (and so keyhold.Store) satisfies it.
type Generations interface {
	ListGenerations(ctx context.Context, environmentID string) ([]*keyhold.RootKeyGeneration, error)
}

var _ Generations = keyhold.EnvironmentStore(nil)

// KeyringStats counts what a Keyring did since it was made.
type KeyringStats struct {
	Hits    uint64 // Get calls served from memory
	Misses  uint64 // Get calls that found no key in memory
	Unwraps uint64 // calls to the Unwrapper (misses share one per key)
	Wipes   uint64 // keys wiped by Wipe, WipeAll, Drop or a replacing Put
	Keys    int    // keys in memory now
}

// Keyring is a concurrency-safe, in-memory cache of unwrapped root keys by
// environment and generation, so that the data path never calls a vault once
// it is warm. Keys it drops are overwritten with zeros. The zero Keyring is
// not usable; call NewKeyring.
type Keyring struct {
	gens   Generations
	unwrap Unwrapper

	mu    sync.Mutex
	keys  map[ringKey]keyhold.Secret
	calls map[ringKey]*unwrapCall
	// epochs count the wipes of each environment, and allEpoch those of
	// WipeAll, so that an unwrap that was in flight when its environment
	// was wiped does not put the key back afterwards.
	epochs   map[string]uint64
	allEpoch uint64

	hits, misses, unwraps, wipes atomic.Uint64
}

type ringKey struct {
	env string // lower case: environment ids compare case-insensitively
	gen int64
}

func keyOf(env string, gen int64) ringKey { return ringKey{strings.ToLower(env), gen} }

// unwrapCall is one unwrap in flight that every concurrent miss of the same
// key waits for.
type unwrapCall struct {
	done chan struct{}
	err  error
}

// NewKeyring returns an empty keyring that finds generations with gens and
// unwraps them with u on a miss.
func NewKeyring(gens Generations, u Unwrapper) *Keyring {
	return &Keyring{gens: gens, unwrap: u,
		keys: map[ringKey]keyhold.Secret{}, calls: map[ringKey]*unwrapCall{}, epochs: map[string]uint64{}}
}

// Get returns a copy of the root key of generation gen of environment env,
// which the caller owns and should Wipe when done (the keyring may wipe its
// own copy at any time, on a lock). On a miss it reads the generation and
// unwraps it once, however many callers miss at the same time; a caller whose
// ctx ends stops waiting without cancelling the unwrap the others wait for.
//
// Errors: ENotFound (Detail DetailGenerationNotFound) for a generation the
// environment does not have; ENotFound (DetailGenerationDestroyed) for a
// destroyed generation, whose records are crypto-shredded; EUnavailable
// (DetailKeysWiped) if the environment's keys were wiped while the key was
// being unwrapped; ctx's error; and the Unwrapper's or the store's error
// unchanged, so that a vault's definite denial (EForbidden) and a vault that
// cannot be reached (EUnavailable) stay apart.
func (k *Keyring) Get(ctx context.Context, env string, gen int64) (keyhold.Secret, error) {
	rk := keyOf(env, gen)
	k.mu.Lock()
	if s, ok := k.keys[rk]; ok {
		out := clone(s)
		k.mu.Unlock()
		k.hits.Add(1)
		return out, nil
	}
	k.misses.Add(1)
	c, ok := k.calls[rk]
	if !ok {
		c = &unwrapCall{done: make(chan struct{})}
		k.calls[rk] = c
		epoch, all := k.epochs[rk.env], k.allEpoch
		// The unwrap outlives a caller that gives up, so that the others
		// waiting for it are not failed by someone else's deadline.
		go k.load(context.WithoutCancel(ctx), rk, env, c, epoch, all)
	}
	k.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
		return keyhold.Secret{}, ctx.Err()
	}
	if c.err != nil {
		return keyhold.Secret{}, c.err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// The environment may have been wiped since the unwrap ended; hand out
	// only what is still cached.
	s, ok := k.keys[rk]
	if !ok {
		return keyhold.Secret{}, wipedError(env, gen)
	}
	return clone(s), nil
}

// load unwraps one generation for every waiter of c.
func (k *Keyring) load(ctx context.Context, rk ringKey, env string, c *unwrapCall, epoch, all uint64) {
	key, err := k.fetch(ctx, env, rk.gen)
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.calls, rk)
	switch {
	case err != nil:
		c.err = err
	case k.epochs[rk.env] != epoch || k.allEpoch != all:
		key.Wipe()
		k.wipes.Add(1)
		c.err = wipedError(env, rk.gen)
	default:
		if old, ok := k.keys[rk]; ok {
			// A Put raced the unwrap; both hold the same key.
			old.Wipe()
			k.wipes.Add(1)
		}
		k.keys[rk] = key
	}
	close(c.done)
}

func (k *Keyring) fetch(ctx context.Context, env string, gen int64) (keyhold.Secret, error) {
	list, err := k.gens.ListGenerations(ctx, env)
	if err != nil && !keyhold.IsNotFound(err) {
		return keyhold.Secret{}, err
	}
	var g *keyhold.RootKeyGeneration
	for _, x := range list {
		if x.Generation == gen {
			g = x
			break
		}
	}
	if g == nil {
		return keyhold.Secret{}, keyhold.Errorc(keyhold.ENotFound, DetailGenerationNotFound,
			"envelope: environment %s has no root-key generation %d", env, gen)
	}
	if g.State == keyhold.GenerationDestroyed {
		return keyhold.Secret{}, keyhold.Errorc(keyhold.ENotFound, DetailGenerationDestroyed,
			"envelope: root-key generation %d of environment %s is destroyed; what was sealed under it cannot be read", gen, env)
	}
	k.unwraps.Add(1)
	key, err := k.unwrap.Unwrap(ctx, g)
	if err != nil {
		return keyhold.Secret{}, err
	}
	if key.Len() != RootKeySize {
		key.Wipe()
		return keyhold.Secret{}, keyhold.Internal("envelope", fmt.Errorf("envelope: generation %d of environment %s unwrapped to %d bytes, not %d", gen, env, key.Len(), RootKeySize))
	}
	return key, nil
}

func wipedError(env string, gen int64) error {
	return keyhold.Errorc(keyhold.EUnavailable, DetailKeysWiped,
		"envelope: the root keys of environment %s were wiped while generation %d was being unwrapped", env, gen)
}

// Put caches a copy of the root key of generation gen of env, so that the
// writer that just made a generation needs no vault call to use it. It
// returns an EInvalid error for a key that is not RootKeySize bytes.
func (k *Keyring) Put(env string, gen int64, key keyhold.Secret) error {
	if key.Len() != RootKeySize {
		return keyhold.Errorf(keyhold.EInvalid, "envelope: a root key must be %d bytes, got %d", RootKeySize, key.Len())
	}
	rk := keyOf(env, gen)
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.keys[rk]; ok {
		old.Wipe()
		k.wipes.Add(1)
	}
	k.keys[rk] = clone(key)
	return nil
}

// Drop wipes and forgets one generation of env, when it is destroyed.
func (k *Keyring) Drop(env string, gen int64) {
	rk := keyOf(env, gen)
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.keys[rk]; ok {
		s.Wipe()
		delete(k.keys, rk)
		k.wipes.Add(1)
	}
}

// Wipe overwrites and forgets every root key of env, and makes unwraps of
// env that are in flight discard their result: after Wipe returns, no key of
// env is in memory until a later Get or Put. The platform calls it when an
// environment locks.
func (k *Keyring) Wipe(env string) {
	e := strings.ToLower(env)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epochs[e]++
	for rk, s := range k.keys {
		if rk.env == e {
			s.Wipe()
			delete(k.keys, rk)
			k.wipes.Add(1)
		}
	}
}

// WipeAll overwrites and forgets every key, as Wipe does for one
// environment; the server calls it on shutdown.
func (k *Keyring) WipeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.allEpoch++
	for rk, s := range k.keys {
		s.Wipe()
		delete(k.keys, rk)
		k.wipes.Add(1)
	}
}

// Stats returns the keyring's counters.
func (k *Keyring) Stats() KeyringStats {
	k.mu.Lock()
	n := len(k.keys)
	k.mu.Unlock()
	return KeyringStats{Hits: k.hits.Load(), Misses: k.misses.Load(), Unwraps: k.unwraps.Load(), Wipes: k.wipes.Load(), Keys: n}
}

// Seal seals plaintext for b under generation gen of b's environment, with a
// key from Get. It returns Get's errors.
func (k *Keyring) Seal(ctx context.Context, gen int64, b Binding, plaintext []byte) ([]byte, error) {
	root, err := k.Get(ctx, b.EnvironmentID, gen)
	if err != nil {
		return nil, err
	}
	defer root.Wipe()
	return SealRand(rand.Reader, root, gen, b, plaintext)
}

// Open opens a value sealed for b, with the key of the generation its header
// names from Get. It returns Get's errors and Open's.
func (k *Keyring) Open(ctx context.Context, b Binding, sealed []byte) ([]byte, error) {
	var held []keyhold.Secret
	defer func() {
		for _, s := range held {
			s.Wipe()
		}
	}()
	return Open(func(gen int64) (keyhold.Secret, error) {
		s, err := k.Get(ctx, b.EnvironmentID, gen)
		if err == nil {
			held = append(held, s)
		}
		return s, err
	}, b, sealed)
}

func clone(s keyhold.Secret) keyhold.Secret { return keyhold.NewSecret(bytes.Clone(s.Reveal())) }
