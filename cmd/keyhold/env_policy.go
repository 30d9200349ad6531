package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold/client"
)

// envPolicyVerbs are the env verbs of the customer-managed-key lifecycle:
// add-policy, remove-policy and swap-policy, each a link or unlink as
// Microsoft's scripts call them, optionally followed to the end (--wait).
func envPolicyVerbs() []*command {
	return []*command{
		envPolicyVerb("add-policy", "link an environment to an Encryption enterprise policy (apply a customer-managed key)",
			"The environment's data moves to a new root key wrapped by the policy's key, online: writes go on,\n"+
				"new records use the new key at once and a background job re-encrypts older ones (resumable).\n"+
				"You need Reader on the policy; the policy must be Healthy and in the environment's region, and\n"+
				"the environment must be a type the profile allows (managed Production or Sandbox by default).",
			true, "link"),
		envPolicyVerb("remove-policy", "unlink an environment from its enterprise policy (revert to the platform's key)",
			"A re-wrap of the environment's root keys under the platform's key: quick whatever the data size,\n"+
				"no outage. Without --policy or --system-id the linked policy is the one removed.",
			false, "unlink"),
		envPolicyVerb("swap-policy", "move a linked environment to another Encryption policy (change key)",
			"A link to another Healthy policy while linked: the root keys are re-wrapped by the new key, no\n"+
				"re-encryption and no outage. The environment must already be linked (else use add-policy).",
			true, "swap"),
	}
}

// envPolicyVerb builds one lifecycle verb. mode is link, unlink or swap.
func envPolicyVerb(name, summary, long string, needPolicy bool, mode string) *command {
	var envID, policy, systemID string
	var wait bool
	args := "--env ENV-ID (--policy POLICY | --system-id ID) [--wait] [flags]"
	if !needPolicy {
		args = "--env ENV-ID [--policy POLICY | --system-id ID] [--wait] [flags]"
	}
	return &command{
		name: name, summary: summary, args: args,
		long: long + "\n\nPOLICY is the policy's resource id, or its name in the current subscription. Without --wait\n" +
			"the command prints the accepted operation; 'keyhold env history ENV-ID' shows how it went.",
		examples: []string{
			"keyhold env " + name + " --env ENV-ID --policy ep-contoso --wait",
			"keyhold env " + name + " --env ENV-ID --system-id 6f0c...-...-... -o json",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&envID, "env", "", "the environment's `ID`")
			fs.StringVar(&policy, "policy", "", "the enterprise `POLICY`: resource id or name")
			fs.StringVar(&systemID, "system-id", "", "the policy's system `ID` (properties.systemId), as Microsoft's scripts take it")
			fs.BoolVar(&wait, "wait", false, "follow the operation with a progress bar on stderr until it ends")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if err := required(envID, "--env"); err != nil {
				return err
			}
			if policy != "" && systemID != "" {
				return usagef("give --policy or --system-id, not both")
			}
			if needPolicy && policy == "" && systemID == "" {
				return usagef("%s needs --policy or --system-id", name)
			}
			c, s, err := a.connect()
			if err != nil {
				return err
			}
			sid, err := resolveSystemID(ctx, c, s, policy, systemID)
			if err != nil {
				return err
			}
			var op *client.LifecycleOperation
			switch mode {
			case "link":
				op, err = c.LinkPolicy(ctx, envID, sid)
			case "swap", "unlink":
				e, gerr := c.GetEnvironment(ctx, envID)
				if gerr != nil {
					return gerr
				}
				linked := e.Properties.EnterprisePolicies.CustomerManagedKeys
				if linked == nil || linked.SystemID == "" {
					return fmt.Errorf("environment %s is not linked to an enterprise policy (its key is managed by %s); use 'keyhold env add-policy'",
						envID, e.Properties.ProtectionStatus.KeyManagedBy)
				}
				if mode == "swap" {
					if strings.EqualFold(linked.SystemID, sid) {
						return fmt.Errorf("environment %s is already linked to that policy (%s); give another one to swap to", envID, linked.ID)
					}
					op, err = c.LinkPolicy(ctx, envID, sid)
				} else {
					if sid == "" {
						sid = linked.SystemID
					}
					op, err = c.UnlinkPolicy(ctx, envID, sid)
				}
			}
			if err != nil {
				return err
			}
			if !wait {
				if a.g.output != "json" {
					a.say("Accepted: operation %s (%s). Follow it with 'keyhold env history %s'.", op.ID, op.Action, envID)
				}
				return a.print(op.EnvironmentOperation, func() table { return operationTable(&op.EnvironmentOperation, "") })
			}
			bar := &opBar{a: a}
			final, werr := c.WaitOperation(ctx, op, func(o *client.EnvironmentOperation) {
				status := ""
				if e, err := c.GetEnvironment(ctx, envID); err == nil {
					status = e.Properties.Encryption.Status
				}
				bar.draw(o, status)
			})
			bar.end()
			status := bar.status
			if final == nil {
				return werr
			}
			if err := a.print(final, func() table { return operationTable(final, status) }); err != nil {
				return err
			}
			return werr
		},
	}
}

// resolveSystemID returns the policy's system id: systemID as given, or
// that of policy (a resource id, or a name found in the subscription);
// "" when neither is given.
func resolveSystemID(ctx context.Context, c *client.Client, s settings, policy, systemID string) (string, error) {
	if systemID != "" || policy == "" {
		return systemID, nil
	}
	var p *client.EnterprisePolicy
	var err error
	if strings.HasPrefix(policy, "/") {
		p, err = c.GetPolicy(ctx, policy)
	} else {
		sub, serr := s.sub()
		if serr != nil {
			return "", fmt.Errorf("--policy %s is a name: %w (or give its resource id)", policy, serr)
		}
		p, err = c.FindPolicy(ctx, sub, policy)
	}
	if err != nil {
		return "", err
	}
	if p.Properties.SystemID == "" {
		return "", errors.New("policy " + p.ID + " has no system id; is it an Encryption policy?")
	}
	return p.Properties.SystemID, nil
}

// operationTable is the final (or accepted) state of an operation.
func operationTable(op *client.EnvironmentOperation, encryption string) table {
	t := table{header: []string{"OPERATION", "ACTION", "STATE", "PROGRESS", "ENCRYPTION", "ERROR"}}
	msg := ""
	if op.Error != nil {
		msg = op.Error.Message
	}
	t.rows = append(t.rows, []string{op.ID, op.Action, op.State.ID,
		fmt.Sprintf("%d/%d (%d%%)", op.Progress.Done, op.Progress.Total, op.Percent()), encryption, msg})
	return t
}

// opBar is the progress bar of --wait on stderr: redrawn in place on a
// terminal, else a line each time it changes, so that logs stay short.
type opBar struct {
	a      *app
	last   string
	status string
	drawn  bool
}

func (b *opBar) line(o *client.EnvironmentOperation, status string) string {
	pct := o.Percent()
	n := pct / 5
	l := fmt.Sprintf("[%s%s] %3d%% %d/%d %s", strings.Repeat("#", n), strings.Repeat(".", 20-n), pct, o.Progress.Done, o.Progress.Total, o.State.ID)
	if status != "" {
		l += " (encryption " + status + ")"
	}
	return l
}

func (b *opBar) draw(o *client.EnvironmentOperation, status string) {
	b.status = status
	l := b.line(o, status)
	if l == b.last {
		return
	}
	b.last = l
	if b.a.stderrTerminal {
		fmt.Fprintf(b.a.stderr, "\r\033[K%s", l)
		b.drawn = true
		return
	}
	fmt.Fprintln(b.a.stderr, l)
}

func (b *opBar) end() {
	if b.drawn {
		fmt.Fprintln(b.a.stderr)
	}
}
