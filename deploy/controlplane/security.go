package controlplane

import (
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/talowa/wedge/deploy/controlplane/auth"
)

// Security is how a client of a control plane that runs with
// authentication and TLS (deploy/controlplane/auth) proves who it is and
// checks whom it reached: a credentials file (`wedgectl control creds`)
// and the control plane's CA certificate. The zero Security adds nothing,
// for an open control plane.
type Security struct {
	Creds string // credentials file; "" connects with none
	CA    string // PEM CA certificate the server's must chain to; "" trusts the system's roots
}

// Options are the connection options s stands for, to pass to Dial or
// nats.Connect. With a credential the connection is always TLS (a plain
// nats:// URL included): over plain TCP whoever sits in between could
// relay the server's nonce and connect with the client's signature. The
// connection's inbox is the credential's own (auth.Inbox), the only one
// its permissions let it read replies on.
func (s Security) Options() []nats.Option {
	var opts []nats.Option
	if s.Creds != "" {
		opts = append(opts, nats.UserCredentials(s.Creds), nats.Secure(), credsInbox(s.Creds))
	}
	if s.CA != "" {
		opts = append(opts, nats.RootCAs(s.CA))
	}
	return opts
}

// credsInbox sets the inbox prefix of the credential in the file path,
// from its user key.
func credsInbox(path string) nats.Option {
	return func(o *nats.Options) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("controlplane: credential: %w", err)
		}
		kp, err := nkeys.ParseDecoratedNKey(b)
		if err != nil {
			return fmt.Errorf("controlplane: credential %s: %w", path, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return fmt.Errorf("controlplane: credential %s: %w", path, err)
		}
		return nats.CustomInboxPrefix(auth.Inbox(pub))(o)
	}
}
