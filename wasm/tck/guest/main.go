// Command guest is the conformance kit built as a plugin; see package tck.
package main

import (
	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/wasm/tck"
)

func init() { sdk.Register(&tck.Plugin{}) }

func main() {}
