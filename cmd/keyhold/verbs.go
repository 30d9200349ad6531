package main

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/client"
)

// mayDestroy is nil when the user gave --yes or confirms question on the
// terminal. Without --yes and without a terminal it is a usage error naming
// verb (such as "vault purge"), so that scripts never hang on a prompt; a
// "no" at the prompt is the error notDone.
func (a *app) mayDestroy(yes bool, verb, question, notDone string) error {
	if yes {
		return nil
	}
	if !a.stdinTerminal {
		return usagef("%s needs --yes when not run on a terminal", verb)
	}
	if !a.confirm(question) {
		return errors.New(notDone)
	}
	return nil
}

// listCommand is a "list" verb without arguments or flags of its own: it
// prints what list returns, as JSON (an empty list as []) or as the table
// tab makes of it. Errors are list's.
func listCommand[T any](summary string, examples []string, list func(context.Context, *app) ([]T, error), tab func([]T) table) *command {
	return &command{
		name:     "list",
		summary:  summary,
		examples: examples,
		run: func(ctx context.Context, a *app, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			items, err := list(ctx, a)
			if err != nil {
				return err
			}
			return a.print(orEmpty(items), func() table { return tab(items) })
		},
	}
}

// callCommand is a verb without arguments or flags of its own that makes
// one client call in the tenant and hands its answer to show. Errors are
// the sign-in's, call's and show's.
func callCommand[T any](name, summary string, examples []string, call func(*client.Client, context.Context) (T, error), show func(*app, T) error) *command {
	return &command{
		name:     name,
		summary:  summary,
		examples: examples,
		run: func(ctx context.Context, a *app, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			v, err := call(c, ctx)
			if err != nil {
				return err
			}
			return show(a, v)
		},
	}
}

// inTenant lists with a client method that needs no subscription; the
// sign-in's errors come back as they are.
func inTenant[T any](f func(*client.Client, context.Context) ([]T, error)) func(context.Context, *app) ([]T, error) {
	return func(ctx context.Context, a *app) ([]T, error) {
		c, _, err := a.connect()
		if err != nil {
			return nil, err
		}
		return f(c, ctx)
	}
}

// inSubscription lists with a client method in the profile's subscription;
// the sign-in's errors and a missing subscription come back as they are.
func inSubscription[T any](f func(*client.Client, context.Context, string) ([]T, error)) func(context.Context, *app) ([]T, error) {
	return func(ctx context.Context, a *app) ([]T, error) {
		c, sub, err := a.connectSub()
		if err != nil {
			return nil, err
		}
		return f(c, ctx, sub)
	}
}
