// Command noop is a plugin that continues every request: the floor of a
// plugin call's cost.
package main

import "github.com/talowa/wedge/sdk"

type noop struct{}

func (noop) OnRequest(sdk.Request, sdk.Response) sdk.Action { return sdk.Continue }

func init() { sdk.Register(noop{}) }

func main() {}
