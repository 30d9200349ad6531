package environment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

// TypeUpdateCMK is the type (and typeDisplayName) of every customer-managed
// key operation, as the admin center's environment history names it.
const TypeUpdateCMK = "Update Customer Managed Key"

// Actions of lifecycle operations (keyhold.Operation.Action).
const (
	ActionLink   = "link"   // apply a policy: new generation, re-encryption
	ActionUnlink = "unlink" // revert to the platform key: re-wrap only
	ActionSwap   = "swap"   // change policy while linked: re-wrap only
	ActionRotate = "rotate" // follow a new version of the policy's key: re-wrap only
)

// Stages of a lifecycle operation, in order.
const (
	StageValidate = "Validate"
	StagePrepare  = "Prepare"
	StageRun      = "Run"
	StageFinalize = "Finalize"
)

var stageOrder = []string{StageValidate, StagePrepare, StageRun, StageFinalize}

// Defaults of LifecycleConfig.
const (
	DefaultLeaseDuration  = 30 * time.Second
	DefaultPollInterval   = time.Second
	DefaultBatchSize      = 500
	DefaultNoRevertPeriod = 7 * 24 * time.Hour
	DefaultRotationCheck  = time.Hour
)

// LifecycleConfig tunes the customer-managed-key lifecycle. Zero fields take
// the defaults above.
type LifecycleConfig struct {
	// Checker runs an Encryption policy's checks (policy.Monitor's Check) so
	// that link and swap refuse a key the policy's identity cannot use,
	// each failed check with its own error. Nil falls back to the policy's
	// recorded health.
	Checker PolicyChecker
	// LeaseDuration is how long a worker holds an operation without
	// renewing it; a crashed worker's operation resumes elsewhere after it.
	LeaseDuration time.Duration
	// PollInterval is how often an idle worker looks for operations that
	// another process created (it is woken at once for its own).
	PollInterval time.Duration
	// BatchSize is how many rows the re-encryption job reseals per
	// transaction; its cursor is saved after each batch.
	BatchSize int
	// NoRevertPeriod is how long an environment migrated from BYOK cannot
	// be reverted to the platform key; the documentation's 7 days.
	NoRevertPeriod time.Duration
	// RotationCheck is how often linked environments whose policy follows
	// the newest key version are checked for a new version, besides the
	// key events that trigger the check at once; negative disables it.
	RotationCheck time.Duration
	// Workers is how many operations this process runs at once; 0 means 2.
	Workers int
	// Exclusive says no other process runs lifecycle operations on this
	// store (SQLite in one data directory), so that leases found when the
	// worker starts were left by a crashed run of this process and are taken
	// back at once instead of after LeaseDuration. Never set it on a store
	// that several servers share (PostgreSQL).
	Exclusive bool
}

func (c LifecycleConfig) withDefaults() LifecycleConfig {
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.NoRevertPeriod <= 0 {
		c.NoRevertPeriod = DefaultNoRevertPeriod
	}
	if c.RotationCheck == 0 {
		c.RotationCheck = DefaultRotationCheck
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	return c
}

// lifecycle is the Service's lifecycle state; the zero value is ready.
type lifecycle struct {
	once sync.Once
	wake chan struct{} // a new operation was created in this process
	// hooks for tests: called between batches of the re-encryption job.
	afterBatch func(op *keyhold.Operation)
}

func (s *Service) lc() *lifecycle {
	s.life.once.Do(func() { s.life.wake = make(chan struct{}, 1) })
	return &s.life
}

func (s *Service) lcfg() LifecycleConfig { return s.cfg.Lifecycle.withDefaults() }

// stage is one stage of an operation as stored.
type stage struct {
	ID    string    `json:"id"`
	State string    `json:"state"`
	First time.Time `json:"firstActionDateTime,omitzero"`
	Last  time.Time `json:"lastActionDateTime,omitzero"`
}

// opParams is what an operation needs to resume after a crash.
type opParams struct {
	// PolicyID is the resource id of the policy to link or swap to, or of
	// the policy being unlinked or rotated.
	PolicyID string `json:"policyId,omitempty"`
	SystemID string `json:"systemId,omitempty"`
	// FromPolicyID is the policy linked before a swap.
	FromPolicyID string `json:"fromPolicyId,omitempty"`
	// Generation is the root-key generation a link made in Prepare (0
	// before), which the re-encryption moves every record to.
	Generation int64 `json:"generation,omitempty"`
	// Migration marks a link of a BYOK environment: re-wrap, no
	// re-encryption, CustomerViaMicrosoft.
	Migration bool `json:"migration,omitempty"`
	// Passes counts the re-encryption passes over the environment.
	Passes int `json:"passes,omitempty"`
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newOperation returns a NotStarted operation of action on env with every
// stage NotStarted.
func (s *Service) newOperation(env *keyhold.Environment, action, requestedBy string, p opParams) (*keyhold.Operation, error) {
	now := s.now().UTC()
	op := &keyhold.Operation{ID: newID(), TenantID: env.TenantID, EnvironmentID: env.ID, Type: TypeUpdateCMK,
		Action: action, State: keyhold.OpNotStarted, RequestedBy: requestedBy, CreatedAt: now, UpdatedAt: now}
	stages := make([]stage, len(stageOrder))
	for i, id := range stageOrder {
		stages[i] = stage{ID: id, State: keyhold.OpNotStarted}
	}
	if err := setJSON(&op.Stages, stages); err != nil {
		return nil, err
	}
	if err := setJSON(&op.Params, p); err != nil {
		return nil, err
	}
	return op, nil
}

func setJSON(dst *json.RawMessage, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return keyhold.Internal("environment: encode operation", err)
	}
	*dst = b
	return nil
}

func stagesOf(op *keyhold.Operation) []stage {
	var st []stage
	if len(op.Stages) > 0 {
		_ = json.Unmarshal(op.Stages, &st)
	}
	if len(st) != len(stageOrder) {
		st = make([]stage, len(stageOrder))
		for i, id := range stageOrder {
			st[i] = stage{ID: id, State: keyhold.OpNotStarted}
		}
	}
	return st
}

func paramsOf(op *keyhold.Operation) (opParams, error) {
	var p opParams
	if len(op.Params) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(op.Params, &p); err != nil {
		return p, keyhold.Internal("environment: stored operation parameters", err)
	}
	return p, nil
}

// enqueue stores op and wakes this process's workers.
func (s *Service) enqueue(ctx context.Context, op *keyhold.Operation) error {
	if err := s.cfg.Store.CreateOperation(ctx, op); err != nil {
		return err
	}
	select {
	case s.lc().wake <- struct{}{}:
	default:
	}
	return nil
}

// activeOperation returns an environment's operation that is NotStarted or
// Running, or nil.
func (s *Service) activeOperation(ctx context.Context, envID string) (*keyhold.Operation, error) {
	ops, err := s.cfg.Store.ListOperations(ctx, envID)
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, err
	}
	for _, op := range ops {
		if op.State == keyhold.OpNotStarted || op.State == keyhold.OpRunning {
			return op, nil
		}
	}
	return nil, nil
}

// Operation returns the lifecycle operation with id, if the caller's tenant
// owns it. It returns ENotFound otherwise.
func (s *Service) Operation(ctx context.Context, tenantID, id string) (*keyhold.Operation, error) {
	op, err := s.cfg.Store.GetOperation(ctx, id)
	if err == nil && tenantID != "" && !strings.EqualFold(op.TenantID, tenantID) {
		err = keyhold.Errorf(keyhold.ENotFound, "other tenant")
	}
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorc(keyhold.ENotFound, "OperationNotFound", "The lifecycle operation %s could not be found in the tenant.", id)
	}
	return op, err
}

// History returns an environment's lifecycle operations, newest first: the
// environment history's "Update Customer Managed Key" entries. It returns
// the store's error.
func (s *Service) History(ctx context.Context, envID string) ([]*keyhold.Operation, error) {
	ops, err := s.cfg.Store.ListOperations(ctx, envID)
	if keyhold.IsNotFound(err) {
		return nil, nil
	}
	return ops, err
}

// run is one operation being run by this worker: the operation, guarded so
// that the lease renewer and the stages can both save it.
type run struct {
	s *Service
	// owner is the lease this run holds (LeaseOperation's owner); every
	// save is fenced by it.
	owner string
	mu    sync.Mutex
	op    *keyhold.Operation
	// lost is the refusal of a save because another worker leased the
	// operation meanwhile; once set, the run writes nothing more.
	lost error
}

// save writes the operation with a renewed lease. The change reaches the
// in-memory operation only once saved. It returns EConflict with detail
// keyhold.DetailOperationLeaseLost once this run's lease has moved.
func (r *run) save(ctx context.Context, change func(op *keyhold.Operation)) error {
	return r.saveWith(ctx, nil, change)
}

// renew sets next's UpdatedAt and, while it runs, extends the lease.
func (r *run) renew(next *keyhold.Operation) {
	now := r.s.now().UTC()
	next.UpdatedAt = now
	if next.State == keyhold.OpRunning || next.State == keyhold.OpNotStarted {
		next.LeaseOwner = r.owner
		next.LeaseUntil = now.Add(r.s.lcfg().LeaseDuration)
	}
}

// leaseLost reports whether err is a save refused because another worker
// holds the operation's lease.
func leaseLost(err error) bool {
	return keyhold.IsConflict(err) && keyhold.ErrorDetail(err) == keyhold.DetailOperationLeaseLost
}

// lostLease returns the refusal that ended this run's lease, or nil.
func (r *run) lostLease() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost
}

// setStage marks stage id state at now.
func (r *run) setStage(ctx context.Context, id, state string) error {
	return r.save(ctx, func(op *keyhold.Operation) {
		st := stagesOf(op)
		now := r.s.now().UTC()
		for i := range st {
			if st[i].ID == id {
				if st[i].First.IsZero() {
					st[i].First = now
				}
				st[i].Last = now
				st[i].State = state
			}
		}
		_ = setJSON(&op.Stages, st)
	})
}

func (r *run) params() (opParams, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return paramsOf(r.op)
}

func (r *run) setParams(ctx context.Context, p opParams) error {
	return r.save(ctx, func(op *keyhold.Operation) { _ = setJSON(&op.Params, p) })
}

// nodeID is this process's worker name.
func (s *Service) nodeID() string { return s.node }

// newLeaseOwner names one lease: the worker's name and a random suffix, so
// that two workers of this process (or one worker leasing an operation
// again after a stall) never hold a lease under the same name and one
// cannot save over the other.
func (s *Service) newLeaseOwner() string { return s.node + "/" + randomHex(4) }

// RunWorker runs lifecycle operations until ctx ends: it leases one that is
// due (created here or in another process, or left by a crashed worker),
// runs it to its end while renewing the lease, and looks for the next. It
// also follows new key versions (rotate.go). It returns nil when ctx ends.
func (s *Service) RunWorker(ctx context.Context) error {
	cfg := s.lcfg()
	s.log.Info("environment: lifecycle worker started", "worker", s.nodeID(), "workers", cfg.Workers)
	if cfg.Exclusive {
		if err := s.reclaimLeases(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("environment: taking back leases of a previous run", "err", err.Error())
		}
	}
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.workLoop(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.rotationLoop(ctx)
	}()
	wg.Wait()
	return nil
}

// reclaimLeases makes the operations that a previous run of this process
// left leased due at once. Every lease it granted ends by now plus
// LeaseDuration, so claiming with that as the cutoff finds them all; each is
// claimed first (its lease moved past the cutoff, so that the loop ends),
// then released.
func (s *Service) reclaimLeases(ctx context.Context) error {
	now := s.now().UTC()
	cutoff := now.Add(s.lcfg().LeaseDuration)
	owner := s.newLeaseOwner()
	var claimed []*keyhold.Operation
	for {
		op, err := s.cfg.Store.LeaseOperation(ctx, owner, cutoff, cutoff.Add(time.Second))
		if keyhold.IsNotFound(err) {
			break
		}
		if err != nil {
			return err
		}
		claimed = append(claimed, op)
	}
	for _, op := range claimed {
		op.LeaseOwner, op.LeaseUntil = "", now
		if err := s.cfg.Store.UpdateOperationLeased(ctx, op, owner); err != nil {
			return err
		}
		s.log.Info("environment: resuming an operation a previous run left", "operation", op.ID, "environment", op.EnvironmentID,
			"worker", s.nodeID())
	}
	return nil
}

func (s *Service) workLoop(ctx context.Context) {
	cfg := s.lcfg()
	wake := s.lc().wake
	for ctx.Err() == nil {
		ran, err := s.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("environment: lifecycle worker", "err", err.Error())
		}
		if ran {
			continue
		}
		t := time.NewTimer(cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// RunOnce leases and runs one due operation, and reports whether there was
// one. Errors of the operation itself are recorded in it (state Failed);
// RunOnce returns only errors of the store.
func (s *Service) RunOnce(ctx context.Context) (bool, error) {
	now := s.now().UTC()
	owner := s.newLeaseOwner()
	op, err := s.cfg.Store.LeaseOperation(ctx, owner, now, now.Add(s.lcfg().LeaseDuration))
	if keyhold.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.execute(ctx, op, owner)
}

// execute runs op, leased to owner, through its stages, renewing its lease
// meanwhile. Operations of other types (recorded by other parts of the
// package) are left alone. A save refused because another worker leased
// the operation meanwhile (this one stalled past its lease) stops the run
// at once, with the operation left as that worker saves it.
func (s *Service) execute(ctx context.Context, op *keyhold.Operation, owner string) error {
	if op.Type != TypeUpdateCMK {
		return nil
	}
	r := &run{s: s, owner: owner, op: op}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		every := s.lcfg().LeaseDuration / 3
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				err := r.save(rctx, nil)
				if leaseLost(err) {
					cancel() // the stages stop at their next store call
					return
				}
				if err != nil && rctx.Err() == nil {
					s.log.Warn("environment: renew operation lease", "operation", op.ID, "err", err.Error())
				}
			}
		}
	}()
	err := s.stages(rctx, r)
	cancel()
	<-renewed
	if lost := r.lostLease(); lost != nil {
		s.log.Warn("environment: lost the lease of a lifecycle operation to another worker, which continues it; this worker stopped",
			"operation", op.ID, "environment", op.EnvironmentID, "action", op.Action, "worker", s.nodeID(), "lease", owner,
			"err", lost.Error())
		return nil
	}
	if ctx.Err() != nil {
		// The process is stopping: leave the operation Running and its
		// lease ended, so that the next worker (this server restarted, or
		// another) resumes it at once.
		r.mu.Lock()
		defer r.mu.Unlock()
		next := *r.op
		next.LeaseOwner, next.LeaseUntil = "", s.now().UTC()
		if err := s.cfg.Store.UpdateOperationLeased(context.WithoutCancel(ctx), &next, owner); err != nil && !leaseLost(err) {
			s.log.Warn("environment: release operation lease", "operation", op.ID, "worker", s.nodeID(), "err", err.Error())
		}
		return nil
	}
	if err != nil {
		s.failOperation(context.WithoutCancel(ctx), r, err)
	}
	return nil
}

// stages runs each stage of r's operation not yet Succeeded.
func (s *Service) stages(ctx context.Context, r *run) error {
	if err := r.save(ctx, func(op *keyhold.Operation) { op.State = keyhold.OpRunning }); err != nil {
		return err
	}
	r.mu.Lock()
	action := r.op.Action
	st := stagesOf(r.op)
	r.mu.Unlock()
	for _, sg := range st {
		if sg.State == keyhold.OpSucceeded {
			continue
		}
		if err := r.setStage(ctx, sg.ID, keyhold.OpRunning); err != nil {
			return err
		}
		var err error
		switch action {
		case ActionLink:
			err = s.linkStage(ctx, r, sg.ID)
		case ActionUnlink, ActionSwap, ActionRotate:
			err = s.rewrapStage(ctx, r, sg.ID)
		default:
			err = keyhold.Errorf(keyhold.EInvalid, "environment: unknown lifecycle action %q", action)
		}
		if err != nil {
			if ctx.Err() == nil {
				_ = r.setStage(ctx, sg.ID, keyhold.OpFailed)
			}
			return err
		}
		if err := r.setStage(ctx, sg.ID, keyhold.OpSucceeded); err != nil {
			return err
		}
	}
	return r.save(ctx, func(op *keyhold.Operation) {
		op.State = keyhold.OpSucceeded
		op.Error = ""
		op.LeaseOwner, op.LeaseUntil = "", time.Time{}
	})
}

// failOperation records err as the operation's failure and, for a link,
// the environment's encryption status Failed with the reason; unless the
// lease moved to another worker meanwhile, which then owns the operation's
// outcome.
func (s *Service) failOperation(ctx context.Context, r *run, err error) {
	msg := keyhold.ErrorMessage(err)
	serr := r.save(ctx, func(op *keyhold.Operation) {
		op.State = keyhold.OpFailed
		op.Error = msg
		op.LeaseOwner, op.LeaseUntil = "", time.Time{}
	})
	if leaseLost(serr) {
		s.log.Warn("environment: lost the lease of a lifecycle operation to another worker, which continues it; this worker's failure is not recorded",
			"operation", r.op.ID, "environment", r.op.EnvironmentID, "action", r.op.Action, "worker", s.nodeID(),
			"lease", r.owner, "err", err.Error())
		return
	}
	s.log.Warn("environment: lifecycle operation failed", "operation", r.op.ID, "environment", r.op.EnvironmentID,
		"action", r.op.Action, "worker", s.nodeID(), "err", err.Error())
	if serr != nil {
		s.log.Error("environment: record failed operation", "operation", r.op.ID, "err", serr.Error())
	}
	if r.op.Action == ActionLink {
		_ = s.updateEnv(ctx, r.op.EnvironmentID, func(e *keyhold.Environment) error {
			if e.EncryptionStatus == keyhold.EncryptionEncrypting {
				e.EncryptionStatus = keyhold.EncryptionFailed
			}
			return nil
		})
	}
}

// updateEnv applies change to the stored environment and writes it,
// retrying on a version conflict with a concurrent writer, then publishes
// EnvironmentChanged.
func (s *Service) updateEnv(ctx context.Context, id string, change func(e *keyhold.Environment) error) error {
	for range 20 {
		e, err := s.cfg.Store.GetEnvironment(ctx, id)
		if err != nil {
			return err
		}
		if err := change(e); err != nil {
			return err
		}
		e.UpdatedAt = s.now().UTC()
		err = s.cfg.Store.UpdateEnvironment(ctx, e)
		if keyhold.IsConflict(err) {
			continue
		}
		if err != nil {
			return err
		}
		s.publishChanged(ctx, e, "environment: encryption state changed")
		return nil
	}
	return keyhold.Errorf(keyhold.EConflict, "environment: environment %s kept changing; try again", id)
}

func (s *Service) publishChanged(ctx context.Context, e *keyhold.Environment, detail string) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(ctx, events.Event{Kind: events.EnvironmentChanged, TenantID: e.TenantID, Scope: e.ID, Detail: detail})
	}
}

func opFailure(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EConflict, "OperationFailed", format, args...)
}
