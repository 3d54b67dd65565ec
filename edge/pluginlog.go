package edge

import (
	"context"
	"log/slog"
	"strings"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
)

// pluginError logs a failed plugin call for a human first: the plugin as
// name@version (as its own log records have it), the phase by name, and a
// Go guest's panic and stack as their own multi-line attribute
// (wasm.FailureAttrs) rather than squashed into err; and the request's ID
// (id, "" for none), which its access-log line and trace carry too.
func (n *Node) pluginError(rt *route, m *wasm.Module, phase abi.Phase, id string, err error) {
	attrs := []slog.Attr{
		slog.String("plugin", wasm.PluginID(m.Name(), m.Version())),
		slog.String("route", rt.name),
		slog.String("phase", abi.PhaseName(phase)),
	}
	attrs = append(attrs, wasm.FailureAttrs(err)...)
	if id != "" {
		attrs = append(attrs, slog.String("request_id", strings.Clone(id)))
	}
	n.log.LogAttrs(context.Background(), slog.LevelWarn, "plugin failed", attrs...)
}
