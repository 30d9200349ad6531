package unitenv

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Credential is an azcore.TokenCredential for the real Azure SDK clients
// in front of an in-process handler: it hands out Token, the object id
// that the stand-in authentication (Auth with Bearer) turns back into the
// principal, and reports to TB a request for any scope but Audience's.
type Credential struct {
	TB       testing.TB
	Token    string
	Audience string
}

// GetToken returns c.Token for an hour.
func (c Credential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(o.Scopes) != 1 || o.Scopes[0] != c.Audience+"/.default" {
		c.TB.Errorf("token requested for scopes %v", o.Scopes)
	}
	return azcore.AccessToken{Token: c.Token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// ARMOptions are resource manager client options that reach srv, a TLS
// test server, as the cloud's resource manager with audience, and do not
// retry, so that a refusal is seen at once.
func ARMOptions(srv *httptest.Server, audience string) *azarm.ClientOptions {
	return &azarm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: srv.URL, Audience: audience},
		}},
	}}
}

// ResponseError returns err as the SDK's *azcore.ResponseError, failing the
// test if it is not one.
func ResponseError(tb testing.TB, err error) *azcore.ResponseError {
	tb.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		tb.Fatalf("error %v is not a ResponseError", err)
	}
	return re
}
