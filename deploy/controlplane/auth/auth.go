// Package auth is the control plane's security: who may connect (NATS
// decentralised JWT authentication), what each may do (roles.go, the one
// table of permissions) and TLS on every link (tls.go). `wedgectl
// control` and `wedgectl up` create its files on first start in their
// data directory (Init); the embedded server runs with them
// (embedded.Options.Auth), and clients present a credentials file and
// trust the CA (controlplane.Security).
//
// # Why JWTs
//
// A POP may write its own status and no other POP's, so each POP needs an
// identity of its own, and POPs come and go. With decentralised auth the
// server trusts an operator key and the account it signed, and a user
// credential is a JWT signed offline by the account's key with its
// permissions inside it: `wedgectl control creds pop NAME --region
// REGION` mints a POP's credential without touching, restarting or
// reconfiguring any server.
// The alternative, one static nkey user per POP in the server's config,
// needs a config reload on every member and leaf for each new POP.
// Permissions name the POP's status key literally (not a `{{name()}}`
// template, which NATS applies only to users of a scoped signing key): the
// credential is minted for one name and holds for that one.
//
// Clients all live in one account (the buckets are shared); the system
// account exists because operator mode requires one. Cluster routes are
// authenticated by TLS client certificates from the same CA (JWTs do not
// cover routes); a leaf node links with the Leaf role's credential and
// checks its own clients' credentials itself, from a leaf bundle
// (LeafBundle) that holds no seed and no key of the control plane's.
//
// A credential is withdrawn as NATS does it (revoke.go): its user key is
// revoked in the account's JWT, which the operator re-signs, recorded in
// the auth directory for every start and pushed to the running servers.
package auth

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Files in an auth directory. Seeds and private keys are 0600. The seeds,
// the CA's key and the servers' key never leave the control plane's
// members: a leaf node gets a bundle without them (LeafBundle).
const (
	operatorSeed = "operator.nk"
	accountSeed  = "account.nk"
	systemSeed   = "system.nk"
	// CAFile is the CA certificate every client trusts (--ca).
	CAFile = "ca.pem"
)

// CredsFile is the path of role's credentials file in dir.
func CredsFile(dir string, role Role) string {
	return filepath.Join(dir, "creds", string(role)+".creds")
}

// Material is an auth directory, loaded: what a server needs to check
// credentials and serve TLS, and, from a control plane's own directory
// (not a leaf bundle), what mints credentials.
type Material struct {
	Dir      string
	Operator *jwt.OperatorClaims
	// AccountJWT and SystemJWT are the two accounts' JWTs, by public key.
	AccountJWT, SystemJWT map[string]string
	// Account and System are the accounts' public keys.
	Account, System string
	TLS             *TLS

	operatorJWT string
	account     nkeys.KeyPair     // nil in a leaf bundle
	operator    nkeys.KeyPair     // nil in a leaf bundle; re-signs the account (Revoke)
	system      nkeys.KeyPair     // nil in a leaf bundle; pushes the account (PushAccount)
	caCert      *x509.Certificate // signs leaf certificates
	caKey       *ecdsa.PrivateKey // nil in a leaf bundle
}

// Init creates whatever of the auth directory dir is missing (the
// operator and account keys, the CA and the servers' certificate, valid
// for localhost, 127.0.0.1 and hosts, and a credentials file for each of
// Roles) and loads it. Only the processes that run a control plane's
// member (`control --embedded`, `up`) call it: a directory copied to the
// other members makes them one control plane.
func Init(dir string, hosts []string) (*Material, error) {
	if err := os.MkdirAll(filepath.Join(dir, "creds"), 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	for name, create := range map[string]func() (nkeys.KeyPair, error){
		operatorSeed: nkeys.CreateOperator, accountSeed: nkeys.CreateAccount, systemSeed: nkeys.CreateAccount,
	} {
		if err := newSeed(filepath.Join(dir, name), create); err != nil {
			return nil, err
		}
	}
	if err := initTLS(dir, hosts); err != nil {
		return nil, err
	}
	m, err := Load(dir)
	if err != nil {
		return nil, err
	}
	for _, r := range Roles {
		if _, err := os.Stat(CredsFile(dir, r)); err == nil {
			continue
		}
		c, err := m.Creds(r, "", "")
		if err != nil {
			return nil, err
		}
		if err := writeNew(CredsFile(dir, r), c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Load reads the auth directory dir, which Init created (here, or on
// another member and copied), and changes nothing: a credential minted
// from a directory made up on the spot would be one no cluster trusts, so
// a missing file is an error that names it.
func Load(dir string) (*Material, error) {
	op, err := readSeed(dir, operatorSeed)
	if err != nil {
		return nil, err
	}
	acc, err := readSeed(dir, accountSeed)
	if err != nil {
		return nil, err
	}
	sys, err := readSeed(dir, systemSeed)
	if err != nil {
		return nil, err
	}
	m := &Material{Dir: dir, account: acc, operator: op, system: sys}
	if m.Account, err = acc.PublicKey(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if m.System, err = sys.PublicKey(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	opPub, err := op.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	m.Operator = jwt.NewOperatorClaims(opPub)
	m.Operator.Name = "wedge"
	m.Operator.SystemAccount = m.System
	if m.operatorJWT, err = m.Operator.Encode(op); err != nil { // signs, and sets the issuer
		return nil, fmt.Errorf("auth: operator: %w", err)
	}
	revoked, err := Revocations(dir)
	if err != nil {
		return nil, err
	}
	accJWT, err := accountJWT(op, m.Account, revoked) // the withdrawn credentials in it (revoke.go)
	if err != nil {
		return nil, err
	}
	sc := jwt.NewAccountClaims(m.System)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(op)
	if err != nil {
		return nil, fmt.Errorf("auth: system account: %w", err)
	}
	m.AccountJWT = map[string]string{m.Account: accJWT}
	m.SystemJWT = map[string]string{m.System: sysJWT}
	if m.caCert, m.caKey, err = loadPair(dir, CAFile, caKeyFile); err != nil {
		return nil, err
	}
	if m.TLS, err = loadTLS(dir, m.caCert, serverFile, serverKeyFile); err != nil {
		return nil, err
	}
	return m, nil
}

// newSeed writes a new nkey seed to path unless the file exists.
func newSeed(path string, create func() (nkeys.KeyPair, error)) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil // there, or unreadable: Load says which
	}
	kp, err := create()
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return writeNew(path, s)
}

// readSeed reads the nkey seed dir/name.
func readSeed(dir, name string) (nkeys.KeyPair, error) {
	b, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed(b)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", filepath.Join(dir, name), err)
	}
	return kp, nil
}

// readFile reads dir/name; a missing file is named, with what dir should
// have been.
func readFile(dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: %s has no %s: not an auth directory `wedgectl control --embedded` created, or a leaf bundle from `wedgectl control leaf-bundle`: %w", dir, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return b, nil
}

// writeNew writes a secret to a file that must not exist yet, readable
// by its owner only.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// Creds mints a credentials file's contents for role (name and region:
// the POP's, for POP; empty for the other roles), signed by the account
// key: no server is told, since every server trusts what the account
// signs.
//
// Each credential may connect only the way its role does: the leaf
// credential as a leaf node's link and never as a client (its
// permissions are the whole account's), the controller's also in process
// (embedded.Server.Connect), every other as an ordinary client.
func (m *Material) Creds(role Role, name, region string) ([]byte, error) {
	if m.account == nil {
		return nil, fmt.Errorf("auth: %s is a leaf bundle: credentials are minted on the control plane", m.Dir)
	}
	user, upub, err := newUser()
	if err != nil {
		return nil, err
	}
	pub, sub, err := Permissions(role, name, region, upub)
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = string(role)
	if name != "" {
		uc.Name += "/" + name
	}
	uc.Pub.Allow.Add(pub...)
	uc.Pub.Deny.Add(PubDenied(role)...)
	uc.Sub.Allow.Add(sub...)
	switch role {
	case Leaf:
		uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeLeafnode)
	case Controller:
		uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard, jwt.ConnectionTypeInProcess)
	default:
		uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	}
	tok, err := uc.Encode(m.account)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s, err := user.Seed()
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	c, err := jwt.FormatUserConfig(tok, s)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return c, nil
}

// Files of a leaf bundle besides CAFile and the leaf credential: the JWTs
// the leaf checks its clients' credentials against, and its own
// certificate, which serves and cannot dial a route.
const (
	operatorJWTFile = "operator.jwt"
	accountJWTFile  = "account.jwt"
	systemJWTFile   = "system.jwt"
	leafFile        = "leaf.pem"
	leafKeyFile     = "leaf-key.pem"
)

// LeafBundle writes to dir, which must not hold any of its files yet,
// what a region's leaf node needs and nothing more: the operator's and
// accounts' JWTs, the CA's certificate, a server certificate of its own
// for hosts (and localhost, 127.0.0.1) and a leaf credential. No seed
// and no key of the control plane's is in it: a leaf's machine can
// neither mint a credential nor join the cluster as a member.
func (m *Material) LeafBundle(dir string, hosts []string) error {
	if m.caKey == nil {
		return fmt.Errorf("auth: %s is a leaf bundle: make one from the control plane's auth directory", m.Dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "creds"), 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	for name, tok := range map[string]string{
		operatorJWTFile: m.operatorJWT, accountJWTFile: m.AccountJWT[m.Account], systemJWTFile: m.SystemJWT[m.System],
	} {
		if err := writeNew(filepath.Join(dir, name), []byte(tok)); err != nil {
			return err
		}
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.caCert.Raw})
	if err := writeNew(filepath.Join(dir, CAFile), ca); err != nil {
		return err
	}
	if _, _, err := newCert(dir, leafFile, leafKeyFile, hostNames(hosts), m.caCert, m.caKey, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	c, err := m.Creds(Leaf, "", "")
	if err != nil {
		return err
	}
	return writeNew(CredsFile(dir, Leaf), c)
}

// LoadLeaf reads a leaf bundle (LeafBundle) and changes nothing. The
// Material it returns serves a leaf node and mints nothing.
func LoadLeaf(dir string) (*Material, error) {
	m := &Material{Dir: dir}
	toks := map[string]string{}
	for _, name := range []string{operatorJWTFile, accountJWTFile, systemJWTFile} {
		b, err := readFile(dir, name)
		if err != nil {
			return nil, err
		}
		toks[name] = strings.TrimSpace(string(b))
	}
	var err error
	if m.Operator, err = jwt.DecodeOperatorClaims(toks[operatorJWTFile]); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", operatorJWTFile, err)
	}
	for _, a := range []struct {
		file string
		pub  *string
		jwts *map[string]string
	}{{accountJWTFile, &m.Account, &m.AccountJWT}, {systemJWTFile, &m.System, &m.SystemJWT}} {
		ac, err := jwt.DecodeAccountClaims(toks[a.file])
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", a.file, err)
		}
		if ac.Issuer != m.Operator.Subject {
			return nil, fmt.Errorf("auth: %s: not signed by the bundle's operator", a.file)
		}
		*a.pub, *a.jwts = ac.Subject, map[string]string{ac.Subject: toks[a.file]}
	}
	if m.Operator.SystemAccount != m.System {
		return nil, fmt.Errorf("auth: %s is not the operator's system account", systemJWTFile)
	}
	if _, err := readFile(dir, filepath.Join("creds", string(Leaf)+".creds")); err != nil {
		return nil, err
	}
	if m.caCert, err = loadCert(dir, CAFile); err != nil {
		return nil, err
	}
	if m.TLS, err = loadTLS(dir, m.caCert, leafFile, leafKeyFile); err != nil {
		return nil, err
	}
	return m, nil
}

// newUser is a fresh user key pair and its public key.
func newUser() (nkeys.KeyPair, string, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("auth: %w", err)
	}
	upub, err := user.PublicKey()
	if err != nil {
		return nil, "", fmt.Errorf("auth: %w", err)
	}
	return user, upub, nil
}
