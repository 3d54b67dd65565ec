// The controller's key: it signs the desired state the rollout controller
// writes, and POPs trust its public key (edge config fleet.control_keys).

package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
)

// controllerKeyName names the controller's key pair: controller.key and
// controller.pub.
const controllerKeyName = "controller"

// controllerKeyFlag is --controller-key: the private key that signs desired
// state.
func controllerKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("controller-key", "", "the controller's private key `FILE`, which signs the desired state POPs apply "+
		"(default with --embedded: controller.key in the auth directory, made on first start, so the members of a cluster share it with that directory)")
}

// controllerTrustFlag is --controller-trust: earlier controller public
// keys whose records the controller still builds on (rollout.Options.Trust).
func controllerTrustFlag(fs *flag.FlagSet) *string {
	return fs.String("controller-trust", "", "comma-separated public key `FILES` of earlier controller keys: after a key rotation, "+
		"or a restore without the key that signed the desired state, the controller takes their records as the base of its changes")
}

// loadControllerTrust reads --controller-trust's files.
func loadControllerTrust(files string) ([]ed25519.PublicKey, error) {
	if files == "" {
		return nil, nil
	}
	ts, err := manifest.LoadTrustFiles(strings.Split(files, ",")...)
	if err != nil {
		return nil, fmt.Errorf("control: --controller-trust: %w", err)
	}
	return slices.Collect(maps.Values(ts)), nil
}

// trustFlag is --trust: the POPs' trust store (their fleet.trust), which
// tells a revocation POPs take from a record in the bucket they refuse.
func trustFlag(fs *flag.FlagSet) *string {
	return fs.String("trust", os.Getenv("WEDGE_TRUST"), "comma-separated public key `FILES` the POPs trust, their fleet.trust "+
		"(default $WEDGE_TRUST): only a revocation one of these keys signed counts, as only such a one stops a POP")
}

// loadTrust reads --trust's files; none gives an empty store.
func loadTrust(files string) (manifest.TrustStore, error) {
	if files == "" {
		return nil, nil
	}
	ts, err := manifest.LoadTrustFiles(strings.Split(files, ",")...)
	if err != nil {
		return nil, fmt.Errorf("--trust: %w", err)
	}
	return ts, nil
}

// loadControllerKey reads the controller's key from path or, with none
// given, from dir (an embedded control plane's auth directory), making
// the pair there on first start and saying where the POPs' public key is.
func loadControllerKey(path, dir string, stdout io.Writer) (ed25519.PrivateKey, error) {
	if path != "" {
		key, err := registry.LoadPrivateKey(path)
		if err != nil {
			return nil, fmt.Errorf("control: controller key: %w", err)
		}
		return key, nil
	}
	if dir == "" {
		return nil, errors.New("control: --controller-key FILE is required without --embedded: the controller signs the desired state POPs apply (make one with `wedgectl keys gen controller`)")
	}
	path = filepath.Join(dir, controllerKeyName+".key")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		made, err := makeControllerKey(dir)
		if err != nil {
			return nil, fmt.Errorf("control: controller key: %w", err)
		}
		if made {
			fmt.Fprintf(stdout, "made the controller key %s; give POPs its public key %s as fleet.control_keys\n",
				path, filepath.Join(dir, controllerKeyName+".pub"))
		}
	}
	key, err := registry.LoadPrivateKey(path)
	if err != nil {
		return nil, fmt.Errorf("control: controller key: %w", err)
	}
	if err := writeControllerPub(dir, key); err != nil {
		return nil, fmt.Errorf("control: controller key: %w", err)
	}
	return key, nil
}

// makeControllerKey puts a new private key in dir unless one is there:
// made aside and hard-linked into place, so members of a cluster starting
// at once on one auth directory agree on the first key linked, and none
// reads a key half written. Its public half is writeControllerPub's.
func makeControllerKey(dir string) (made bool, err error) {
	tmp, err := os.MkdirTemp(dir, ".controller-*")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	priv, _, err := registry.GenerateKey(tmp, controllerKeyName)
	if err != nil {
		return false, err
	}
	if err := os.Link(priv, filepath.Join(dir, filepath.Base(priv))); errors.Is(err, fs.ErrExist) {
		return false, nil // another member made it first
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// writeControllerPub makes dir's controller.pub the public half of key
// unless it is already: derived from the key on every start, since a
// member stopped after linking the key had written none, and one left
// from another key would give POPs a key that verifies nothing.
func writeControllerPub(dir string, key ed25519.PrivateKey) error {
	pub := key.Public().(ed25519.PublicKey)
	path := filepath.Join(dir, controllerKeyName+".pub")
	if have, err := manifest.LoadTrustFiles(path); err == nil && len(have) == 1 && have[manifest.KeyID(pub)] != nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".controller-pub-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err := errors.Join(err, tmp.Chmod(0o644), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
