package httpcache

import "github.com/talowa/wedge/wasm/abi"

// AppendLines appends each item of list, a header_values list (abi.NextItem),
// to lines as a view of list's bytes: how the plugin and the host read a
// message's field lines into Headers without a string per line. list must
// not change while lines is in use.
func AppendLines(lines []string, list []byte) []string {
	for {
		item, rest, ok := abi.NextItem(list)
		if !ok {
			return lines
		}
		lines = append(lines, view(item))
		list = rest
	}
}
