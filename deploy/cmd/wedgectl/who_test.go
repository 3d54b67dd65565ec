package main

import (
	"bytes"
	"context"
	"errors"
	"os/user"
	"strings"
	"testing"

	"github.com/talowa/wedge/deploy/rollout"
)

// TestOperator: --who (or $WEDGE_WHO, its default), else the OS user, else
// $USER, else $LOGNAME; with none of them, an error that asks for --who,
// never a placeholder.
func TestOperator(t *testing.T) {
	root := func() (*user.User, error) { return &user.User{Username: "root"}, nil }
	noUser := func() (*user.User, error) { return nil, errors.New("user: unknown userid 4242") }
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		flag    string
		current func() (*user.User, error)
		env     map[string]string
		want    string
	}{
		{"carol", root, map[string]string{"USER": "u"}, "carol"},
		{"  ", root, nil, "root"},
		{"", noUser, map[string]string{"USER": "u", "LOGNAME": "l"}, "u"},
		{"", noUser, map[string]string{"LOGNAME": "l"}, "l"},
		{"", func() (*user.User, error) { return &user.User{}, nil }, map[string]string{"USER": " "}, ""},
		{"", noUser, nil, ""},
	} {
		got, err := operatorFrom(tc.flag, tc.current, env(tc.env))
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("operatorFrom(%q, env %v) = %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
		if err != nil && (!strings.Contains(err.Error(), "--who") || strings.Contains(got, "unknown")) {
			t.Errorf("error %q does not ask for --who", err)
		}
	}
}

// TestWhoAndSplitFlags: rollout start records --who and --split; a rollout
// command takes its actor from $WEDGE_WHO; a split the edges could not
// read is refused before anything is stored.
func TestWhoAndSplitFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	srv, s := rolloutPlane(t, ctx)
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append(args, "--nats", srv.URL()), &out)
		return out.String(), err
	}
	start := []string{"rollout", "start", "auth@v2", "--waves", "eu-west:10%", "--gate", "error_rate<1%"}
	if _, err := cli(append(start, "--split", "ip", "--who", "carol")...); err == nil || !strings.Contains(err.Error(), `split "ip"`) {
		t.Fatalf("start with --split ip: %v", err)
	}
	if rs, _ := rollout.List(ctx, s); len(rs) != 0 {
		t.Fatal("a refused start stored a rollout")
	}
	out, err := cli(append(start, "--split", "header:X-User", "--who", "carol")...)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	r, err := rollout.Get(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.By != "carol" || r.Split != "header:X-User" {
		t.Errorf("record by %q split %q, want carol and header:X-User", r.By, r.Split)
	}
	t.Setenv("WEDGE_WHO", "dave")
	if _, err := cli("rollout", "pause", id); err != nil {
		t.Fatal(err)
	}
	if r, err = rollout.Get(ctx, s, id); err != nil || len(r.Commands) != 1 || r.Commands[0].Who != "dave" {
		t.Fatalf("commands %+v, %v: want a pause by dave", r.Commands, err)
	}
	audit, err := rollout.RecentAudit(ctx, s, 10)
	if err != nil || len(audit) != 1 || audit[0].Who != "carol" {
		t.Fatalf("audit %+v, %v: want the start by carol", audit, err)
	}
}
