package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

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
			return printList(a, tab)(list(ctx, a))
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
		run: signedIn(argless, nil, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
			v, err := call(c, ctx)
			if err != nil {
				return err
			}
			return show(a, v)
		}),
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

// printWith returns what prints a client call's answer, as JSON or as the
// table tab makes of it; the call's error comes back as it is. It lets a
// verb end with printWith(a, tab)(c.Call(ctx, ...)).
func printWith[T any](a *app, tab func(T) table) func(T, error) error {
	return func(v T, err error) error {
		if err != nil {
			return err
		}
		return a.print(v, func() table { return tab(v) })
	}
}

// printList is printWith for lists: an empty one prints as [] in JSON.
func printList[T any](a *app, tab func([]T) table) func([]T, error) error {
	return func(vs []T, err error) error {
		if err != nil {
			return err
		}
		return a.print(orEmpty(vs), func() table { return tab(vs) })
	}
}

// one turns the table of a list into the table of one item.
func one[T any](tab func([]T) table) func(*T) table {
	return func(v *T) table { return tab([]T{*v}) }
}

// yesFlag registers --yes, which skips mayDestroy's question.
func yesFlag(fs *flag.FlagSet, yes *bool) {
	fs.BoolVar(yes, "yes", false, "do not ask for confirmation")
}

// confirmName is a check for byName that asks mayDestroy's question; the
// question and the refusal are formats of the name.
func confirmName(yes *bool, verb, question, notDone string) func(a *app, name string) error {
	return func(a *app, name string) error {
		return a.mayDestroy(*yes, verb, fmt.Sprintf(question, name), fmt.Sprintf(notDone, name))
	}
}

// signedIn is the run of a verb that checks its command line with check,
// then runs more (if not nil) before anything is sent, signs in and hands
// the client and the settings to do. Errors are those steps'.
func signedIn(check func(a *app, args []string) error, more func(a *app) error,
	do func(ctx context.Context, a *app, c *client.Client, s settings) error) func(context.Context, *app, []string) error {
	return func(ctx context.Context, a *app, args []string) error {
		if err := check(a, args); err != nil {
			return err
		}
		if more != nil {
			if err := more(a); err != nil {
				return err
			}
		}
		c, s, err := a.connect()
		if err != nil {
			return err
		}
		return do(ctx, a, c, s)
	}
}

// argless is signedIn's check for verbs that take no arguments.
func argless(_ *app, args []string) error { return noArgs(args) }

// inSub makes a signedIn do of one that works in the profile's
// subscription; a missing subscription comes back as connectSub's error.
func inSub(do func(ctx context.Context, a *app, c *client.Client, sub string) error) func(context.Context, *app, *client.Client, settings) error {
	return func(ctx context.Context, a *app, c *client.Client, s settings) error {
		sub, err := s.sub()
		if err != nil {
			return err
		}
		return do(ctx, a, c, sub)
	}
}

// byName completes cmd, a verb that names one thing with the flag nameFlag
// (its value at *flagVal) or with its one argument. Its run takes the
// name, runs check (if not nil) before anything is sent, signs in and hands
// the name to do. Errors are nameArg's, check's, the sign-in's and do's.
func byName(cmd *command, flagVal *string, nameFlag string, check func(a *app, name string) error,
	do func(ctx context.Context, a *app, c *client.Client, s settings, name string) error) *command {
	var name string
	cmd.run = signedIn(func(_ *app, args []string) (err error) {
		name, err = nameArg(*flagVal, args, nameFlag)
		return err
	}, func(a *app) error {
		if check == nil {
			return nil
		}
		return check(a, name)
	}, func(ctx context.Context, a *app, c *client.Client, s settings) error {
		return do(ctx, a, c, s, name)
	})
	return cmd
}

// byNameInSub is byName for things in the profile's subscription; a
// missing subscription comes back as connectSub's error.
func byNameInSub(cmd *command, flagVal *string, nameFlag string, check func(a *app, name string) error,
	do func(ctx context.Context, a *app, c *client.Client, sub, name string) error) *command {
	return byName(cmd, flagVal, nameFlag, check, func(ctx context.Context, a *app, c *client.Client, s settings, name string) error {
		sub, err := s.sub()
		if err != nil {
			return err
		}
		return do(ctx, a, c, sub, name)
	})
}
