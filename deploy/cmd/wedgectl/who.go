package main

import (
	"errors"
	"flag"
	"os"
	"os/user"
	"strings"
)

// whoFlag is the --who flag of the commands that write the audit stream
// or a record's author: push, revoke, purge, rollout start and the
// rollout commands.
func whoFlag(fs *flag.FlagSet) *string {
	return fs.String("who", os.Getenv("WEDGE_WHO"), "`NAME` of the operator, for the audit stream (default $WEDGE_WHO, else the OS user)")
}

// errNoWho asks for --who where nothing names the operator: an audit entry
// by "unknown" answers nothing when it is read.
var errNoWho = errors.New("cannot tell who you are for the audit stream (no OS user name, $USER or $LOGNAME): pass --who NAME or set WEDGE_WHO")

// operator names who runs a command: --who (whose default is $WEDGE_WHO),
// else the OS user, else $USER or $LOGNAME. In a container the process's
// uid often has no passwd entry and no $USER is set: then it is an error,
// never a placeholder.
func operator(flagValue string) (string, error) {
	return operatorFrom(flagValue, user.Current, os.Getenv)
}

func operatorFrom(flagValue string, current func() (*user.User, error), getenv func(string) string) (string, error) {
	if s := strings.TrimSpace(flagValue); s != "" {
		return s, nil
	}
	if u, err := current(); err == nil && strings.TrimSpace(u.Username) != "" {
		return strings.TrimSpace(u.Username), nil
	}
	for _, env := range []string{"USER", "LOGNAME"} {
		if s := strings.TrimSpace(getenv(env)); s != "" {
			return s, nil
		}
	}
	return "", errNoWho
}
