package main

import "errors"

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
