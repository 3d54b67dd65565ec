// Command trap is a version of the fleet tests' stamp plugin.
package main

import (
	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/wasm/internal/testguests/fleet/stamp"
)

func init() { sdk.Register(&stamp.Stamp{Version: "trap", Do: stamp.Trap}) }

func main() {}
