// Withdrawing a credential, as NATS does it: the account's JWT lists the
// user keys it revoked and as of when, signed by the operator. Revoke
// records one in the auth directory (revoked.json), where Load finds it
// on every start, and PushAccount sends the re-signed JWT to the running
// servers, which refuse the credential from then on and close its open
// connections.

package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// revokedFile lists the withdrawn credentials of an auth directory.
const revokedFile = "revoked.json"

// maxRevokedFile bounds revoked.json: a million revocations is far more
// than a fleet mints, and far less than would fit a NATS payload anyway.
const maxRevokedFile = 64 << 20

// Revocation withdraws one credential: the server refuses every
// credential of user key Key issued up to At (NATS compares whole
// seconds), which is all there is of it since each credential has a key
// of its own.
type Revocation struct {
	Key  string    `json:"key"`
	Name string    `json:"name,omitempty"` // the credential's name (pop/eu-west-1), for people
	At   time.Time `json:"at"`
}

// Revocations are the credentials withdrawn in the auth directory dir;
// none if it has no revoked.json.
func Revocations(dir string) ([]Revocation, error) {
	path := filepath.Join(dir, revokedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	rs, err := parseRevocations(b)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return rs, nil
}

// parseRevocations decodes and checks revoked.json: a file copied by hand
// between members could be anything, and a revocation silently dropped
// would let a withdrawn credential back in.
func parseRevocations(b []byte) ([]Revocation, error) {
	if len(b) > maxRevokedFile {
		return nil, fmt.Errorf("%d bytes, want at most %d", len(b), maxRevokedFile)
	}
	var rs []Revocation
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("want a JSON list of revocations: %w", err)
	}
	for i, r := range rs {
		if !nkeys.IsValidPublicUserKey(r.Key) {
			return nil, fmt.Errorf("revocation %d: key %q is not a user's public key", i, r.Key)
		}
		if r.At.Unix() <= 0 {
			return nil, fmt.Errorf("revocation %d of %s: no time", i, r.Key)
		}
	}
	return rs, nil
}

// accountJWT is the account's JWT, signed by the operator, with rs
// revoked in it.
func accountJWT(op nkeys.KeyPair, account string, rs []Revocation) (string, error) {
	ac := jwt.NewAccountClaims(account)
	ac.Name = "wedge"
	// JetStream on, unbounded: the buckets' own limits apply.
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit}
	for _, r := range rs {
		ac.RevokeAt(r.Key, r.At)
	}
	tok, err := ac.Encode(op)
	if err != nil {
		return "", fmt.Errorf("auth: account: %w", err)
	}
	return tok, nil
}

// CredsUser is the user a credentials file's contents name: its public
// key and name (role/NAME). A credential another control plane minted is
// refused: revoking it here would change nothing.
func (m *Material) CredsUser(creds []byte) (key, name string, err error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", "", fmt.Errorf("auth: credential: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", "", fmt.Errorf("auth: credential: %w", err)
	}
	if uc.Issuer != m.Account {
		return "", "", fmt.Errorf("auth: credential %s (%s) was not minted by the control plane of %s", uc.Name, uc.Subject, m.Dir)
	}
	return uc.Subject, uc.Name, nil
}

// Revoke withdraws the credential of user key (name only labels it) as of
// at: it is recorded in the auth directory, which every start loads, and
// m.AccountJWT is re-signed with it, for PushAccount to send to the
// servers running now. The control plane's own controller credential
// (creds/controller.creds, which the members connect in process with) is
// refused: withdrawing it takes a new auth directory. A key revoked
// already keeps its first revocation.
func (m *Material) Revoke(key, name string, at time.Time) error {
	if m.operator == nil {
		return fmt.Errorf("auth: %s is a leaf bundle: credentials are revoked on the control plane", m.Dir)
	}
	if !nkeys.IsValidPublicUserKey(key) {
		return fmt.Errorf("auth: %q is not a user's public key (U...)", key)
	}
	if own, err := os.ReadFile(CredsFile(m.Dir, Controller)); err == nil {
		if k, _, err := m.CredsUser(own); err == nil && k == key {
			return fmt.Errorf("auth: %s is the control plane's own controller credential (%s): withdrawing it takes a new auth directory", key, CredsFile(m.Dir, Controller))
		}
	}
	rs, err := Revocations(m.Dir)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(rs, func(r Revocation) bool { return r.Key == key }) {
		// Revoked again, it is only signed and pushed again: for the
		// servers an earlier push missed.
		rs = append(rs, Revocation{Key: key, Name: name, At: at.UTC().Truncate(time.Second)})
	}
	tok, err := accountJWT(m.operator, m.Account, rs)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := replaceFile(filepath.Join(m.Dir, revokedFile), append(b, '\n')); err != nil {
		return err
	}
	m.AccountJWT = map[string]string{m.Account: tok}
	return nil
}

// replaceFile replaces path with b: written to a new file first, then
// renamed over it, so that a crash leaves the old file or the new one,
// never half of one, and a reader finds either whole. The new file takes
// the mode and owner of the one it replaces: whoever runs a renewal (root,
// from cron) is not the user the servers run as, which must still read
// their files (a server.pem readable by all stays so). Only root may give
// a file away, so a renewal run as another user leaves the file its own.
// A file that did not exist is readable by its owner only, the owner of
// its directory (the first revocation, run as root, made a revoked.json
// the servers could not read, and they would not start).
func replaceFile(path string, b []byte) error {
	old, err := os.Stat(path)
	var owner os.FileInfo = old
	if errors.Is(err, os.ErrNotExist) {
		owner, err = os.Stat(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// Set before the rename: the file appears with them.
	if err = keepOwner(f, owner); err == nil && old != nil {
		err = f.Chmod(old.Mode().Perm())
	}
	if err == nil {
		_, err = f.Write(b)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// pushQuiet is how long PushAccount waits for more servers' answers after
// the last one: a cluster's members answer within a round trip of each
// other.
const pushQuiet = 500 * time.Millisecond

// PushAccount sends the account's JWT (m.AccountJWT: its revocations) to
// the running servers url reaches and returns the names of those that
// applied it. It connects as a short-lived user of the system account,
// minted here from system.nk, and publishes the JWT as a claims update
// ($SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE), which every member of a
// cluster receives through its routes and applies at once: the revoked
// credentials' new connections are refused and their open ones closed.
// A leaf node's link to the cluster carries the account, not the system
// account, so a leaf is given the update by its own URL.
//
// The servers answer one each; PushAccount returns once none answered for
// pushQuiet after the first, or ctx ends before the first.
func (m *Material) PushAccount(ctx context.Context, url string) ([]string, error) {
	if m.system == nil {
		return nil, fmt.Errorf("auth: %s is a leaf bundle: revocations are pushed from the control plane", m.Dir)
	}
	user, upub, err := newUser()
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = "push-account"
	uc.Expires = time.Now().Add(5 * time.Minute).Unix() // nothing lasting to leak
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	tok, err := uc.Encode(m.system)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	seed, err := user.Seed()
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(tok, string(seed)), nats.Secure(m.TLS.Client()),
		nats.Name("wedgectl push-account"), nats.NoReconnect())
	if err != nil {
		return nil, fmt.Errorf("auth: push to %s: %w", url, err)
	}
	defer nc.Close()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("auth: push: %w", err)
	}
	subject := "$SYS.REQ.ACCOUNT." + m.Account + ".CLAIMS.UPDATE"
	if err := nc.PublishRequest(subject, inbox, []byte(m.AccountJWT[m.Account])); err != nil {
		return nil, fmt.Errorf("auth: push: %w", err)
	}
	var servers []string
	for {
		var msg *nats.Msg
		if len(servers) == 0 {
			msg, err = sub.NextMsgWithContext(ctx)
		} else if msg, err = sub.NextMsg(pushQuiet); errors.Is(err, nats.ErrTimeout) {
			break // quiet: every server that will answer has
		}
		if err != nil {
			return nil, fmt.Errorf("auth: push to %s: %w", url, err)
		}
		var r struct {
			Server struct {
				Name string `json:"name"`
			} `json:"server"`
			Data *struct {
				Message string `json:"message"`
			} `json:"data"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			return nil, fmt.Errorf("auth: push: an answer: %w", err)
		}
		switch {
		case r.Error != nil:
			return nil, fmt.Errorf("auth: push: server %s refused the account: %s", r.Server.Name, r.Error.Description)
		case r.Data == nil || r.Data.Message != "jwt updated": // nats-server's words for applied
			// "jwt update skipped": the server has not loaded the account
			// and would load it as it started, without the revocations.
			return nil, fmt.Errorf("auth: push: server %s did not apply the account: %s", r.Server.Name, msg.Data)
		}
		servers = append(servers, r.Server.Name)
	}
	slices.Sort(servers)
	return servers, nil
}
