package sqlstore

import (
	"context"
	"time"
)

// AcquireLease gives owner the lease name until until when it is free, ran
// out by now, or is owner's already. One statement decides it, so two
// processes asking at once cannot both win: the upsert locks the row and
// its condition reads the committed lease.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	if name == "" || owner == "" {
		return false, invalid("a lease needs a name and an owner")
	}
	if !until.After(now) {
		return false, invalid("lease %q must end after it starts", name)
	}
	ts, err := encTimes(now, until)
	if err != nil {
		return false, err
	}
	n, err := s.execN(ctx, `INSERT INTO leases (name, owner, until_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_at = excluded.until_at
		WHERE leases.until_at <= ? OR leases.owner = excluded.owner`, name, owner, ts[1], ts[0])
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// ReleaseLease ends owner's lease of name.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	_, err := s.exec(ctx, `DELETE FROM leases WHERE name = ? AND owner = ?`, name, owner)
	return err
}
