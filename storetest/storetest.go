// Package storetest is the conformance suite of keyhold.Store: every driver
// (sqlite, postgres) runs it from its own tests, so that they behave alike.
package storetest

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// Run runs the conformance suite against stores made by open. Each subtest
// opens its own empty store; open should register its cleanup (Close, and
// dropping what it created) with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) keyhold.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s keyhold.Store)
	}{
		{"Tenants", testTenants},
		{"Principals", testPrincipals},
		{"FindPrincipals", testFindPrincipals},
		{"DeletePrincipalCascades", testDeletePrincipalCascades},
		{"Credentials", testCredentials},
		{"GroupMembers", testGroupMembers},
		{"Subscriptions", testSubscriptions},
		{"ResourceGroups", testResourceGroups},
		{"Registrations", testRegistrations},
		{"RoleAssignments", testRoleAssignments},
		{"RoleAssignmentScopePrefix", testRoleAssignmentScopePrefix},
		{"Resources", testResources},
		{"ListResources", testListResources},
		{"AuditChain", testAuditChain},
		{"AuditFilters", testAuditFilters},
		{"AuditConcurrent", testAuditConcurrent},
		{"Settings", testSettings},
		{"SettingsConcurrentCreate", testSettingsConcurrentCreate},
		{"InTxCommit", testInTxCommit},
		{"InTxRollbackOnError", testInTxRollbackOnError},
		{"InTxRollbackOnPanic", testInTxRollbackOnPanic},
		{"InTxNested", testInTxNested},
		{"InTxContinuesAfterConflict", testInTxContinuesAfterConflict},
		{"InTxAudit", testInTxAudit},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"KeyVersions", testKeyVersions},
		{"UpdateKeyVersion", testUpdateKeyVersion},
		{"ListKeys", testListKeys},
		{"ListKeyVersions", testListKeyVersions},
		{"DeleteRecoverPurge", testDeleteRecoverPurge},
		{"ListDeletedKeys", testListDeletedKeys},
		{"PurgeVaultKeys", testPurgeVaultKeys},
		{"KeyRotationPolicies", testKeyRotationPolicies},
		{"KeyVersionsConcurrent", testKeyVersionsConcurrent},
		{"KeysInTx", testKeysInTx},
		{"Environments", testEnvironments},
		{"UpdateEnvironmentConcurrent", testUpdateEnvironmentConcurrent},
		{"Generations", testGenerations},
		{"Operations", testOperations},
		{"LeaseOperation", testLeaseOperation},
		{"LeaseOperationConcurrent", testLeaseOperationConcurrent},
		{"UpdateOperationLeased", testUpdateOperationLeased},
		{"UpdateOperationLeasedInTx", testUpdateOperationLeasedInTx},
		{"UpdateOperationLeasedConcurrent", testUpdateOperationLeasedConcurrent},
		{"DeleteEnvironmentCascade", testDeleteEnvironmentCascade},
		{"Tables", testTables},
		{"Rows", testRows},
		{"RowsInTx", testRowsInTx},
		{"ListRows", testListRows},
		{"RowsBelowGeneration", testRowsBelowGeneration},
		{"ResealRow", testResealRow},
		{"ResealRowsLarge", testResealRowsLarge},
		{"PutRowConcurrent", testPutRowConcurrent},
		{"ResealRowConcurrent", testResealRowConcurrent},
		{"Files", testFiles},
		{"FilesReseal", testFilesReseal},
		{"AdminSessions", testAdminSessions},
		{"AdminSessionsExpired", testAdminSessionsExpired},
		{"AdminSessionsConcurrentUpdate", testAdminSessionsConcurrentUpdate},
		{"Leases", testLeases},
		{"LeasesConcurrent", testLeasesConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// Persist fills s with one of everything, closes it, and checks that the
// store reopen returns holds it all, unchanged. Drivers call it with a reopen
// that opens the same database again.
func Persist(t *testing.T, s keyhold.Store, reopen func() keyhold.Store) {
	t.Helper()
	ctx := context.Background()
	f := fill(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = reopen()
	defer s.Close()

	gotT, err := s.GetTenant(ctx, f.tenant.ID)
	must(t, err)
	same(t, "tenant", gotT, f.tenant)
	gotP, err := s.GetPrincipal(ctx, f.user.ID)
	must(t, err)
	same(t, "principal", gotP, f.user)
	creds, err := s.ListCredentials(ctx, f.user.ID)
	must(t, err)
	same(t, "credentials", creds, []*keyhold.Credential{f.cred})
	members, err := s.ListGroupMembers(ctx, f.group.ID)
	must(t, err)
	same(t, "members", members, []string{f.user.ID})
	gotS, err := s.GetSubscription(ctx, f.sub.ID)
	must(t, err)
	same(t, "subscription", gotS, f.sub)
	gotG, err := s.GetResourceGroup(ctx, f.sub.ID, f.group2.Name)
	must(t, err)
	same(t, "resource group", gotG, f.group2)
	gotPR, err := s.GetProviderRegistration(ctx, f.sub.ID, f.provider.Namespace)
	must(t, err)
	same(t, "provider", gotPR, f.provider)
	gotF, err := s.GetFeatureRegistration(ctx, f.sub.ID, f.feature.Namespace, f.feature.Name)
	must(t, err)
	same(t, "feature", gotF, f.feature)
	gotA, err := s.GetRoleAssignment(ctx, f.assignment.Name)
	must(t, err)
	same(t, "role assignment", gotA, f.assignment)
	gotR, err := s.GetResource(ctx, f.resource.ID)
	must(t, err)
	same(t, "resource", gotR, f.resource)
	gotV, err := s.GetSetting(ctx, "persist")
	must(t, err)
	same(t, "setting", gotV, []byte("value"))
	recs, err := s.ListAudit(ctx, keyhold.AuditFilter{})
	must(t, err)
	same(t, "audit", recs, []*keyhold.AuditRecord{f.audit})
	gotK, err := s.GetKeyVersion(ctx, f.key.VaultName, f.key.Name, f.key.Version)
	must(t, err)
	same(t, "key version", gotK, f.key)
	gotD, err := s.GetDeletedKey(ctx, f.deleted.Latest.VaultName, f.deleted.Latest.Name)
	must(t, err)
	same(t, "deleted key", gotD, f.deleted)
	gotRP, err := s.GetKeyRotationPolicy(ctx, f.policy.VaultName, f.policy.Name)
	must(t, err)
	same(t, "rotation policy", gotRP, f.policy)
	gotE, err := s.GetEnvironment(ctx, f.env.ID)
	must(t, err)
	same(t, "environment", gotE, f.env)
	gens, err := s.ListGenerations(ctx, f.env.ID)
	must(t, err)
	same(t, "generations", gens, []*keyhold.RootKeyGeneration{f.gen})
	gotO, err := s.GetOperation(ctx, f.op.ID)
	must(t, err)
	same(t, "operation", gotO, f.op)
	gotTb, err := s.GetTable(ctx, f.env.ID, f.table.Name)
	must(t, err)
	same(t, "table", gotTb, f.table)
	gotRow, err := s.GetRow(ctx, f.env.ID, f.row.Table, f.row.ID)
	must(t, err)
	same(t, "row", gotRow, f.row)
	gotFile, err := s.GetFile(ctx, f.file.FileRef)
	must(t, err)
	same(t, "file", gotFile, f.file)
	segs, err := s.ListFileSegments(ctx, f.file.UploadID, -1, 0)
	must(t, err)
	same(t, "file segments", segs, f.segments)
	// The pending upload is still pending: committing it now works.
	if _, err := s.CommitFileUpload(ctx, "persist-pending", 4, f.file.Version, t0); err != nil {
		t.Errorf("committing the pending upload after reopen: %v", err)
	}
	// The chain goes on from where it was, not from the genesis hash.
	next := &keyhold.AuditRecord{Time: f.audit.Time.Add(time.Second), Action: "after/reopen"}
	must(t, s.AppendAudit(ctx, next))
	if next.Seq != 2 || next.PrevHash != f.audit.Hash {
		t.Errorf("after reopen: Seq %d PrevHash %.8s, want 2 and %.8s", next.Seq, next.PrevHash, f.audit.Hash)
	}
}

// fixture is one of everything, as fill stored it.
type fixture struct {
	tenant     *keyhold.Tenant
	user       *keyhold.Principal
	group      *keyhold.Principal
	cred       *keyhold.Credential
	sub        *keyhold.Subscription
	group2     *keyhold.ResourceGroup
	provider   *keyhold.ProviderRegistration
	feature    *keyhold.FeatureRegistration
	assignment *keyhold.RoleAssignment
	resource   *keyhold.Resource
	audit      *keyhold.AuditRecord
	key        *keyhold.KeyVersion
	deleted    *keyhold.DeletedKey
	policy     *keyhold.KeyRotationPolicy
	env        *keyhold.Environment
	gen        *keyhold.RootKeyGeneration
	op         *keyhold.Operation
	table      *keyhold.Table
	row        *keyhold.SealedRow
	file       *keyhold.File
	segments   []*keyhold.FileSegment
}

func fill(t *testing.T, s keyhold.Store) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{
		tenant: &keyhold.Tenant{ID: "t1", DisplayName: "Contoso", DefaultDomain: "contoso.example", CreatedAt: t0},
		user: &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Ann",
			UserPrincipalName: "Ann@contoso.example", DirectoryRoles: []string{keyhold.RoleGlobalAdministrator}, CreatedAt: t0},
		group: &keyhold.Principal{ID: "g1", TenantID: "t1", Type: keyhold.PrincipalGroup, DisplayName: "Admins", CreatedAt: t0},
		cred: &keyhold.Credential{ID: "c1", PrincipalID: "u1", Kind: keyhold.CredentialPassword, Hash: "$argon2id$x",
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		sub: &keyhold.Subscription{ID: "S1", TenantID: "t1", DisplayName: "Dev", State: "Enabled", CreatedAt: t0},
		group2: &keyhold.ResourceGroup{SubscriptionID: "S1", Name: "RG-One", Location: "westeurope",
			Tags: map[string]string{"env": "dev"}, ProvisioningState: "Succeeded",
			SystemData: keyhold.SystemData{CreatedBy: "ann", CreatedByType: "User", CreatedAt: t0,
				LastModifiedBy: "ann", LastModifiedByType: "User", LastModifiedAt: t0}},
		provider: &keyhold.ProviderRegistration{SubscriptionID: "S1", Namespace: "Microsoft.PowerPlatform",
			State: keyhold.StateRegistered, UpdatedAt: t0},
		feature: &keyhold.FeatureRegistration{SubscriptionID: "S1", Namespace: "Microsoft.PowerPlatform",
			Name: "enterprisePoliciesPreview", State: keyhold.StateRegistered, UpdatedAt: t0},
		assignment: &keyhold.RoleAssignment{Name: "a1", TenantID: "t1", Scope: "/subscriptions/S1",
			RoleDefinitionID: "acdd72a7-3385-48ef-bd42-f606fba81ae7", PrincipalID: "u1",
			PrincipalType: keyhold.PrincipalUser, CreatedAt: t0, UpdatedAt: t0},
		resource: &keyhold.Resource{ID: "/subscriptions/S1/resourceGroups/RG-One/providers/Microsoft.KeyVault/vaults/V1",
			SubscriptionID: "S1", ResourceGroup: "RG-One", Type: "Microsoft.KeyVault/vaults", Name: "V1",
			Location: "westeurope", Properties: []byte(`{"enableSoftDelete":true}`),
			SystemData: keyhold.SystemData{CreatedAt: t0, LastModifiedAt: t0}, ETag: `"1"`},
		audit: &keyhold.AuditRecord{Time: t0, TenantID: "t1", PrincipalID: "u1", Action: "a/write", Method: "PUT",
			Scope: "/subscriptions/S1", Status: 200, Result: "Succeeded", RequestID: "r1"},
	}
	must(t, s.CreateTenant(ctx, f.tenant))
	must(t, s.CreatePrincipal(ctx, f.user))
	must(t, s.CreatePrincipal(ctx, f.group))
	must(t, s.AddCredential(ctx, f.cred))
	must(t, s.AddGroupMember(ctx, "g1", "u1"))
	must(t, s.CreateSubscription(ctx, f.sub))
	must(t, s.PutResourceGroup(ctx, f.group2))
	must(t, s.PutProviderRegistration(ctx, f.provider))
	must(t, s.PutFeatureRegistration(ctx, f.feature))
	must(t, s.CreateRoleAssignment(ctx, f.assignment))
	must(t, s.PutResource(ctx, f.resource))
	must(t, s.PutSetting(ctx, "persist", []byte("value")))
	must(t, s.AppendAudit(ctx, f.audit))
	f.key = keyVersion("V1", "CMK", 1)
	must(t, s.CreateKeyVersion(ctx, f.key))
	f.policy = &keyhold.KeyRotationPolicy{VaultName: "V1", Name: "CMK", Policy: []byte(`{"lifetimeActions":[]}`),
		CreatedAt: t0, UpdatedAt: t0}
	must(t, s.PutKeyRotationPolicy(ctx, f.policy))
	must(t, s.CreateKeyVersion(ctx, keyVersion("V1", "Old", 2)))
	var err error
	f.deleted, err = s.DeleteKey(ctx, "V1", "Old", t0, t0.Add(7*24*time.Hour))
	must(t, err)

	f.env = environment("env-1", "t1")
	f.env.PolicyID, f.env.LockedAt = "/subscriptions/S1/p", t0.Add(time.Second)
	must(t, s.CreateEnvironment(ctx, f.env))
	f.gen = generation("env-1", 1, keyhold.GenerationActive)
	must(t, s.CreateGeneration(ctx, f.gen))
	f.op = operation("op-1", "env-1", t0)
	f.op.LeaseOwner, f.op.LeaseUntil, f.op.Cursor = "w1", t0.Add(time.Minute), "account/r1"
	must(t, s.CreateOperation(ctx, f.op))
	f.table = &keyhold.Table{EnvironmentID: "env-1", Name: "Account", DisplayName: "Accounts",
		Schema: []byte(`{"columns":[]}`), CreatedAt: t0}
	must(t, s.CreateTable(ctx, f.table))
	f.row = sealedRow("env-1", "Account", "r1", 1, "row")
	must(t, s.PutRow(ctx, f.row, -1))
	f.file = commitFile(t, s, keyhold.FileRef{EnvironmentID: "env-1", Table: "account", RowID: "r1", Column: "doc"}, "persist-up", 3, 1)
	f.segments, err = s.ListFileSegments(ctx, "persist-up", -1, 0)
	must(t, err)
	if len(f.segments) != 3 {
		t.Fatalf("filled %d segments, want 3", len(f.segments))
	}
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: f.file.FileRef, UploadID: "persist-pending", SegmentSize: 4, CreatedAt: t0}))
	must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "persist-pending", Index: 0, Generation: 1, Sealed: []byte("pend")}))
	return f
}

// t0 has nanoseconds and a zone other than UTC, so that a store that rounds
// or drops either fails.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// wantCode fails t unless err carries code. The message must not leak SQL.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Errorf("%s: got error %v (code %q), want code %q", what, err, got, code)
		return
	}
	msg := keyhold.ErrorMessage(err)
	for _, word := range []string{"SELECT", "INSERT", "UPDATE ", "DELETE", "SQLSTATE", "constraint"} {
		if strings.Contains(msg, word) {
			t.Errorf("%s: message %q leaks %q", what, msg, word)
		}
	}
}

// same compares got and want after normalising every time.Time in them to
// UTC, since stores return times in UTC and times compare with Equal.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := normTimes(got), normTimes(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, g, w)
	}
}

var timeType = reflect.TypeOf(time.Time{})

// normTimes returns a deep copy of v with times in UTC without monotonic
// readings, so that reflect.DeepEqual compares instants.
func normTimes(v any) any {
	if v == nil {
		return nil
	}
	return normValue(reflect.ValueOf(v)).Interface()
}

func normValue(v reflect.Value) reflect.Value {
	switch {
	case v.Type() == timeType:
		return reflect.ValueOf(v.Interface().(time.Time).UTC())
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(normValue(v.Elem()))
		return p
	case v.Kind() == reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if c.Field(i).CanSet() {
				c.Field(i).Set(normValue(v.Field(i)))
			}
		}
		return c
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			c.Index(i).Set(normValue(v.Index(i)))
		}
		return c
	}
	return v
}
