package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIVersionLifecycle is the api-version Microsoft's scripts send to link
// and unlink an enterprise policy, and the one operation-location carries.
const APIVersionLifecycle = "2019-10-01"

// Lifecycle operation states (state.id).
const (
	OperationNotStarted = "NotStarted"
	OperationRunning    = "Running"
	OperationSucceeded  = "Succeeded"
	OperationFailed     = "Failed"
)

// LifecycleOperation is an accepted link or unlink, or an operation read
// back: the operation and where and how often to poll it.
type LifecycleOperation struct {
	EnvironmentOperation
	// Location is the operation's absolute URL (operation-location).
	Location string `json:"-"`
	// RetryAfter is how long the server asked to wait before the next poll.
	RetryAfter time.Duration `json:"-"`
}

// Percent is the operation's progress in percent: records moved of all,
// 100 once it succeeded.
func (o *EnvironmentOperation) Percent() int {
	if o.State.ID == OperationSucceeded {
		return 100
	}
	if o.Progress.Total <= 0 {
		return 0
	}
	return int(min(o.Progress.Done*100/o.Progress.Total, 100))
}

// LinkPolicy links the environment to the Encryption policy with system id
// systemID, as Microsoft's scripts do (POST .../enterprisePolicies/Encryption/link
// {"SystemId": ...}); while linked to another policy it changes the key (a
// swap). The server answers 202 with the operation; it refuses a broken
// precondition (400, its own code: region, policy health, vault, key, type),
// a caller without Reader on the policy (403), an environment it does not
// show to the caller (404) and a locked or busy one (409).
func (c *Client) LinkPolicy(ctx context.Context, envID, systemID string) (*LifecycleOperation, error) {
	return c.lifecycle(ctx, envID, "link", systemID)
}

// UnlinkPolicy reverts the environment to the platform-managed key (POST
// .../enterprisePolicies/Encryption/unlink). systemID names the linked
// policy; the server refuses another one (400) and, within the no-revert
// window of a migration from BYOK, any (409). Otherwise as LinkPolicy.
func (c *Client) UnlinkPolicy(ctx context.Context, envID, systemID string) (*LifecycleOperation, error) {
	return c.lifecycle(ctx, envID, "unlink", systemID)
}

func (c *Client) lifecycle(ctx context.Context, envID, verb, systemID string) (*LifecycleOperation, error) {
	if err := checkEnvID(envID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(systemID) == "" {
		return nil, errors.New("client: " + verb + " needs the enterprise policy's system id (properties.systemId)")
	}
	path := BAPPrefix + pathf("environments/%s/enterprisePolicies/Encryption/"+verb, envID) + q(APIVersionLifecycle)
	op := &LifecycleOperation{}
	resp, err := c.Do(ctx, http.MethodPost, AudienceBAP, path, map[string]string{"SystemId": systemID}, &op.EnvironmentOperation)
	if err != nil {
		return nil, err
	}
	op.Location, op.RetryAfter = resp.Header.Get("operation-location"), retryAfter(resp.Header)
	if op.Location == "" {
		op.Location = operationPath(op.ID)
	}
	return op, nil
}

// GetOperation returns the lifecycle operation with id opID. An unknown
// one, or any for a caller who is not a platform administrator, is an
// *Error with status 404.
func (c *Client) GetOperation(ctx context.Context, opID string) (*LifecycleOperation, error) {
	if strings.TrimSpace(opID) == "" || strings.ContainsAny(opID, "/?#") {
		return nil, errors.New("client: an operation id is a GUID such as 00000000-0000-0000-0000-000000000000")
	}
	return c.pollOperation(ctx, operationPath(opID))
}

func operationPath(id string) string {
	return BAPPrefix + pathf("lifecycleOperations/%s", id) + q(APIVersionLifecycle)
}

func (c *Client) pollOperation(ctx context.Context, loc string) (*LifecycleOperation, error) {
	op := &LifecycleOperation{Location: loc}
	resp, err := c.Do(ctx, http.MethodGet, AudienceBAP, loc, nil, &op.EnvironmentOperation)
	if err != nil {
		return nil, err
	}
	op.RetryAfter = retryAfter(resp.Header)
	return op, nil
}

// retryAfter reads Retry-After in seconds; 0 when absent or malformed.
func retryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s < 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, time.Minute)
}

// WaitOperation polls op's operation-location, waiting as Retry-After asks
// (else the client's poll interval), calling progress (if not nil) with
// each state read, until the operation ends or ctx does. It returns the
// final operation; a Failed one comes with an *Error carrying its code and
// message, so that a caller can print the state and still fail.
func (c *Client) WaitOperation(ctx context.Context, op *LifecycleOperation, progress func(*EnvironmentOperation)) (*EnvironmentOperation, error) {
	if op == nil {
		return nil, errors.New("client: no operation to wait for")
	}
	cur := op
	for {
		if progress != nil {
			progress(&cur.EnvironmentOperation)
		}
		if cur.Ended() {
			break
		}
		wait := cur.RetryAfter
		if wait <= 0 {
			wait = c.poll
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return &cur.EnvironmentOperation, ctx.Err()
		case <-t.C:
		}
		next, err := c.pollOperation(ctx, cur.Location)
		if err != nil {
			return &cur.EnvironmentOperation, err
		}
		cur = next
	}
	final := &cur.EnvironmentOperation
	if final.State.ID == OperationFailed {
		e := &Error{StatusCode: http.StatusOK, Code: "OperationFailed", Method: http.MethodGet, Path: cur.Location,
			Message: fmt.Sprintf("the %s operation %s failed", strings.ToLower(final.Action), final.ID)}
		if final.Error != nil {
			e.Code, e.Message = final.Error.Code, final.Error.Message
		}
		return final, e
	}
	return final, nil
}

// ListHistory returns the environment's lifecycle operations (GET
// .../environments/{id}/lifecycleOperations, as Microsoft's scripts read
// them), newest first, each with its state, stages, progress and error:
// the "Update Customer Managed Key" operations and the create, lock and
// re-enable entries. A caller who is not a platform administrator gets 404.
func (c *Client) ListHistory(ctx context.Context, envID string) ([]EnvironmentOperation, error) {
	if err := checkEnvID(envID); err != nil {
		return nil, err
	}
	return List[EnvironmentOperation](ctx, c, AudienceBAP, BAPPrefix+pathf("environments/%s/lifecycleOperations", envID)+q(APIVersionLifecycle))
}
