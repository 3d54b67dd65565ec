// Package wasmbin reads and rewrites WebAssembly binaries just enough for the
// host: [Instrument] adds the fuel check that lets the host stop runaway
// guests, and [Module] assembles the small hand-made modules tests need.
//
// # Why not a library
//
// github.com/tetratelabs/wabin decodes sections but keeps function bodies as
// opaque bytes and has been unmaintained since 2023; the rewrite needs an
// instruction walker anyway, and every section it does not change passes
// through untouched. The walker knows every instruction wazero accepts (MVP,
// sign extension, saturating conversions, bulk memory, reference types, SIMD,
// threads, tail calls) and refuses anything else with an error, never a guess.
package wasmbin

import (
	"bytes"
	"errors"
	"fmt"
)

var magic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order is each known section's rank in the order the binary format
// requires; custom sections may appear anywhere.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

// Limits beyond which a module is refused, as in the JavaScript embedding
// of WebAssembly; they stop modules that would make a decoder allocate
// without bound.
const (
	MaxLocals    = 50_000
	MaxTableSize = 1_000_000 // entries, in all tables together
	MaxTables    = 16
)

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("wasmbin: malformed module")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Instrument returns a copy of the module bin in which every loop iteration
// burns one unit of fuel from a new global, and a loop that finds the fuel
// spent calls the imported host function hostModule.yield (type () -> ())
// and refills it:
//
//	loop ...
//	  global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	  global.get $fuel  i32.eqz
//	  if
//	    call $yield
//	    i32.const <fuel>  global.set $fuel
//	  end
//
// The yield call is how the host stops a runaway guest (it traps the call
// once the deadline has passed) and, as important, how the goroutine running
// the guest gets back into Go code, where the Go scheduler can preempt it:
// compiled Wasm has no preemption points, so a guest spinning without host
// calls would otherwise stall every stop-the-world phase of the garbage
// collector, and with it the whole process. Code without loops runs for a
// bounded time (its size, or the call stack limit for recursion), so loop
// headers are enough.
//
// The import is appended after the module's own imports, which moves every
// defined function up by one index; Instrument renumbers calls, ref.func,
// exports, the start function, element segments and the name section. DWARF
// sections (.debug_*) are dropped: they describe code offsets the rewrite
// moves. A module that already imports hostModule.yield is refused.
func Instrument(bin []byte, hostModule, yield string, fuel uint32) ([]byte, error) {
	if !bytes.HasPrefix(bin, magic) {
		return nil, malformed("not a core WebAssembly 1.0 binary")
	}
	w := &rewriter{hostModule: hostModule, yield: yield, fuel: fuel}
	if err := w.scan(bin); err != nil {
		return nil, err
	}
	r := reader{b: bin, off: len(magic)}
	out := append(make([]byte, 0, len(bin)+len(bin)/8), magic...)
	rank := 0
	for !r.done() {
		id, _ := r.byte()
		payload, err := r.bytesU32()
		if err != nil {
			return nil, malformed("section %d: %v", id, err)
		}
		if id == secCustom {
			if out, err = w.custom(out, payload); err != nil {
				return nil, err
			}
			continue
		}
		rk, ok := order[id]
		if !ok {
			return nil, malformed("unknown section id %d", id)
		}
		if rk <= rank {
			return nil, malformed("section %d out of order", id)
		}
		rank = rk
		// Sections the rewrite needs but the module lacks go just before the
		// first section that must follow them.
		if out, err = w.addMissing(out, rk); err != nil {
			return nil, err
		}
		var p []byte
		switch id {
		case secType:
			p, err = w.types(payload)
		case secImport:
			p, err = w.imports(payload)
		case secTable:
			p, err = w.tables(payload)
		case secGlobal:
			p, err = w.globals(payload)
		case secExport:
			p, err = w.exports(payload)
		case secStart:
			p, err = w.start(payload)
		case secElement:
			p, err = w.elements(payload)
		case secCode:
			p, err = w.code(payload)
		case secFunction:
			p = payload // checked by scan
		case secTag:
			p, err = payload, vector(payload, id, func(r *reader) error {
				if _, err := r.byte(); err != nil { // attribute
					return err
				}
				_, err := w.typeIndex(r)
				return err
			})
		case secMemory:
			p, err = payload, vector(payload, id, func(r *reader) error { _, _, err := r.limits(); return err })
		case secData:
			p, err = payload, vector(payload, id, w.dataSegment)
		default: // data count
			p = payload
		}
		if err != nil {
			return nil, err
		}
		out = appendSection(out, id, p)
	}
	return w.addMissing(out, len(order)+1)
}

// rewriter carries what the rewrite learns about the module: scan fills in
// the indexes and types before any section is rewritten, so that sections
// may refer to each other in any order (a name section may come first).
type rewriter struct {
	hostModule, yield string
	fuel              uint32

	typeDone, importDone, globalDone bool
	voidType                         uint32   // index of the type () -> ()
	typeParams                       []uint32 // parameter count of each type
	importedFuncs                    uint32   // also the index of the yield import
	importedGlobals                  uint32
	fuelGlobal                       uint32   // one past the module's own globals
	funcTypes                        []uint32 // type of each defined function
	numTables                        int
	tableElems                       uint64
	object                           string // the first import not a function, for ObjectImport
}

// scan reads the type, import, global and function sections ahead of the
// rewrite, checking every count and index it relies on.
func (w *rewriter) scan(bin []byte) error {
	r := reader{b: bin, off: len(magic)}
	var definedGlobals uint32
	for !r.done() {
		id, _ := r.byte()
		payload, err := r.bytesU32()
		if err != nil {
			return malformed("section %d: %v", id, err)
		}
		switch id {
		case secType:
			err = vector(payload, id, func(r *reader) error {
				form, err := r.byte()
				if err != nil || form != 0x60 {
					return errors.New("not a function type")
				}
				var counts [2]uint32
				for j := range counts {
					if counts[j], err = r.count(); err != nil {
						return err
					}
					if err = r.skip(int(counts[j])); err != nil {
						return err
					}
				}
				w.typeParams = append(w.typeParams, counts[0])
				return nil
			})
		case secImport:
			err = w.scanImports(payload)
		case secGlobal:
			pr := reader{b: payload}
			if definedGlobals, err = pr.count(); err != nil {
				err = malformed("global count: %v", err)
			}
		case secFunction:
			err = vector(payload, id, func(r *reader) error {
				t, err := w.typeIndex(r)
				w.funcTypes = append(w.funcTypes, t)
				return err
			})
		}
		if err != nil {
			return err
		}
	}
	w.fuelGlobal = w.importedGlobals + definedGlobals
	return nil
}

// fn renumbers a function index for the added import.
func (w *rewriter) fn(i uint32) uint32 {
	if i >= w.importedFuncs {
		return i + 1
	}
	return i
}

func (w *rewriter) addMissing(out []byte, rank int) ([]byte, error) {
	var err error
	if rank > order[secType] && !w.typeDone {
		var p []byte
		if p, err = w.types(appendU32(nil, 0)); err != nil {
			return nil, err
		}
		out = appendSection(out, secType, p)
	}
	if rank > order[secImport] && !w.importDone {
		var p []byte
		if p, err = w.imports(appendU32(nil, 0)); err != nil {
			return nil, err
		}
		out = appendSection(out, secImport, p)
	}
	if rank > order[secGlobal] && !w.globalDone {
		var p []byte
		if p, err = w.globals(appendU32(nil, 0)); err != nil {
			return nil, err
		}
		out = appendSection(out, secGlobal, p)
	}
	return out, nil
}

// types finds the type () -> (), adding it if absent.
func (w *rewriter) types(payload []byte) ([]byte, error) {
	w.typeDone = true
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return nil, malformed("type count: %v", err)
	}
	countLen := r.off
	for i := uint32(0); i < n; i++ {
		start := r.off
		_, _ = r.byte() // 0x60, checked by scan
		for j := 0; j < 2; j++ {
			c, _ := r.count()
			_ = r.skip(int(c))
		}
		if r.off-start == 3 { // 0x60 0x00 0x00
			w.voidType = i
			return payload, nil
		}
	}
	w.voidType = n
	p := append(appendU32(nil, n+1), payload[countLen:]...)
	return append(p, 0x60, 0x00, 0x00), nil
}

// scanImports counts imported functions and globals and checks each import.
func (w *rewriter) scanImports(payload []byte) error {
	return vector(payload, secImport, func(r *reader) error {
		mod, err1 := r.name()
		name, err2 := r.name()
		kind, err3 := r.byte()
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		if kind != 0x00 && kind < byte(len(importKinds)) && w.object == "" {
			w.object = importKinds[kind] + " " + string(mod) + "." + string(name)
		}
		switch kind {
		case 0x00: // func: type index
			if string(mod) == w.hostModule && string(name) == w.yield {
				return fmt.Errorf("the module imports %s.%s, which is reserved for the host", mod, name)
			}
			w.importedFuncs++
			_, err := w.typeIndex(r)
			return err
		case 0x01: // table: reftype, limits
			if _, err := r.byte(); err != nil {
				return err
			}
			_, _, err := r.limits()
			return err
		case 0x02: // memory: limits
			_, _, err := r.limits()
			return err
		case 0x03: // global: value type, mutability
			w.importedGlobals++
			return r.skip(2)
		case 0x04: // tag: attribute, type index
			if _, err := r.byte(); err != nil {
				return err
			}
			_, err := w.typeIndex(r)
			return err
		}
		return fmt.Errorf("unknown import kind %d", kind)
	})
}

// imports appends the yield import.
func (w *rewriter) imports(payload []byte) ([]byte, error) {
	w.importDone = true
	r := reader{b: payload}
	n, _ := r.count() // checked by scan
	p := append(appendU32(nil, n+1), payload[r.off:]...)
	p = appendName(appendName(p, w.hostModule), w.yield)
	return appendU32(append(p, 0x00), w.voidType), nil
}

// tables rewrites table initializer expressions (the 0x40 0x00 form) and
// gives every table a maximum of at most MaxTableSize. wazero grows a table
// without a maximum by whatever table.grow asks, up to 2^32 entries.
func (w *rewriter) tables(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return nil, malformed("table count: %v", err)
	}
	if w.numTables += int(n); w.numTables > MaxTables {
		return nil, malformed("%d tables, more than %d", w.numTables, MaxTables)
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		withInit := len(r.rest()) > 0 && r.rest()[0] == 0x40
		if withInit {
			if err := r.skip(2); err != nil {
				return nil, malformed("table %d: %v", i, err)
			}
			out = append(out, 0x40, 0x00)
		}
		reftype, err := r.byte()
		if err != nil {
			return nil, malformed("table %d: %v", i, err)
		}
		min, max, err := r.limits()
		if err != nil {
			return nil, malformed("table %d: %v", i, err)
		}
		if max < 0 || max > MaxTableSize {
			max = MaxTableSize
		}
		if w.tableElems += uint64(min); min > uint64(max) || w.tableElems > MaxTableSize {
			return nil, malformed("table %d: %d elements, more than the %d allowed", i, min, MaxTableSize)
		}
		out = appendU32(appendU32(append(out, reftype, 0x01), uint32(min)), uint32(max))
		if withInit {
			if out, err = w.constExpr(out, &r); err != nil {
				return nil, malformed("table %d: %v", i, err)
			}
		}
	}
	return out, w.end(&r, "table")
}

// globals rewrites initializers and appends the fuel global.
func (w *rewriter) globals(payload []byte) ([]byte, error) {
	w.globalDone = true
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return nil, malformed("global count: %v", err)
	}
	out := appendU32(nil, n+1)
	for i := uint32(0); i < n; i++ {
		start := r.off
		if err := r.skip(2); err != nil { // value type, mutability
			return nil, malformed("global %d: %v", i, err)
		}
		out = append(out, payload[start:r.off]...)
		if out, err = w.constExpr(out, &r); err != nil {
			return nil, malformed("global %d: %v", i, err)
		}
	}
	if err := w.end(&r, "global"); err != nil {
		return nil, err
	}
	out = append(out, 0x7f, 0x01, 0x41) // mutable i32 = fuel
	out = appendS64(out, int64(w.fuel))
	return append(out, 0x0b), nil
}

func (w *rewriter) exports(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return nil, malformed("export count: %v", err)
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		name, err := r.name()
		if err != nil {
			return nil, malformed("export %d: %v", i, err)
		}
		kind, err1 := r.byte()
		idx, err2 := r.u32()
		if err := errors.Join(err1, err2); err != nil {
			return nil, malformed("export %d: %v", i, err)
		}
		switch {
		case kind == 0x00:
			idx = w.fn(idx)
		case kind == 0x03 && idx >= w.fuelGlobal:
			return nil, malformed("export %q of global %d, which the module does not define", name, idx)
		}
		out = appendU32(append(appendName(out, string(name)), kind), idx)
	}
	return out, w.end(&r, "export")
}

func (w *rewriter) start(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	idx, err := r.u32()
	if err != nil {
		return nil, malformed("start: %v", err)
	}
	return appendU32(nil, w.fn(idx)), w.end(&r, "start")
}

// elements renumbers function indexes in the eight element segment forms.
func (w *rewriter) elements(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return nil, malformed("element count: %v", err)
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		if out, err = w.element(out, &r); err != nil {
			return nil, malformed("element segment %d: %v", i, err)
		}
	}
	return out, w.end(&r, "element")
}

func (w *rewriter) element(out []byte, r *reader) ([]byte, error) {
	flags, err := r.u32()
	if err != nil {
		return nil, err
	}
	if flags > 7 {
		return nil, fmt.Errorf("unknown flags %d", flags)
	}
	out = appendU32(out, flags)
	if flags == 2 || flags == 6 { // explicit table index
		t, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, t)
	}
	if flags&1 == 0 { // active: offset expression
		if out, err = w.constExpr(out, r); err != nil {
			return nil, err
		}
	}
	if flags != 0 && flags != 4 { // elemkind or reftype
		b, err := r.byte()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	count, err := r.count()
	if err != nil {
		return nil, err
	}
	out = appendU32(out, count)
	for j := uint32(0); j < count; j++ {
		if flags&4 == 0 { // function indexes
			f, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(out, w.fn(f))
		} else if out, err = w.constExpr(out, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// typeIndex reads a type index and checks that the type exists (wazero
// v1.12 indexes its type table with it before checking).
func (w *rewriter) typeIndex(r *reader) (uint32, error) {
	t, err := r.u32()
	if err == nil && t >= uint32(len(w.typeParams)) {
		err = fmt.Errorf("type index %d out of range", t)
	}
	return t, err
}

// vector checks a section that passes through unchanged: a count, then
// count elements that item reads.
func vector(payload []byte, id byte, item func(*reader) error) error {
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return malformed("section %d: %v", id, err)
	}
	for i := uint32(0); i < n; i++ {
		if err := item(&r); err != nil {
			return malformed("section %d, element %d: %v", id, i, err)
		}
	}
	if !r.done() {
		return malformed("trailing bytes in section %d", id)
	}
	return nil
}

// dataSegment reads one data segment (active, passive, or active with a
// memory index) without changing it.
func (w *rewriter) dataSegment(r *reader) error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	if flags > 2 {
		return fmt.Errorf("data flags %d", flags)
	}
	if flags == 2 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	if flags != 1 {
		if _, err := w.constExpr(nil, r); err != nil {
			return err
		}
	}
	_, err = r.bytesU32()
	return err
}

func (w *rewriter) end(r *reader, section string) error {
	if !r.done() {
		return malformed("trailing bytes in %s section", section)
	}
	return nil
}

// custom drops DWARF and renumbers the name section; other custom sections
// pass through.
func (w *rewriter) custom(out, payload []byte) ([]byte, error) {
	r := reader{b: payload}
	name, err := r.name()
	if err != nil {
		return nil, malformed("custom section name: %v", err)
	}
	switch {
	case bytes.HasPrefix(name, []byte(".debug_")):
		return out, nil
	case string(name) == "name":
		p, err := w.names(payload[:r.off], r.rest())
		if err != nil {
			return nil, malformed("name section: %v", err)
		}
		return appendSection(out, secCustom, p), nil
	}
	return appendSection(out, secCustom, payload), nil
}

// names renumbers function names (subsection 1) and local names (2), keeps
// the module name (0) and drops the other subsections, which are keyed by
// function index too but only serve debuggers.
func (w *rewriter) names(head, body []byte) ([]byte, error) {
	out := append([]byte(nil), head...)
	r := reader{b: body}
	for !r.done() {
		id, _ := r.byte()
		sub, err := r.bytesU32()
		if err != nil {
			return nil, err
		}
		switch id {
		case 0:
			sr := reader{b: sub}
			if _, err := sr.name(); err != nil || !sr.done() {
				return nil, errors.New("bad module name subsection")
			}
			out = appendSection(out, id, sub)
		case 1, 2:
			sr := reader{b: sub}
			n, err := sr.u32()
			if err != nil {
				return nil, err
			}
			p := appendU32(nil, n)
			for i := uint32(0); i < n; i++ {
				idx, err := sr.u32()
				if err != nil {
					return nil, err
				}
				start := sr.off
				if id == 1 {
					_, err = sr.name()
				} else {
					err = sr.nameMap()
				}
				if err != nil {
					return nil, err
				}
				p = append(appendU32(p, w.fn(idx)), sub[start:sr.off]...)
			}
			if !sr.done() {
				return nil, errors.New("trailing bytes in name subsection")
			}
			out = appendSection(out, id, p)
		}
	}
	return out, nil
}

func (w *rewriter) code(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.count()
	if err != nil {
		return nil, malformed("function count: %v", err)
	}
	if int(n) != len(w.funcTypes) {
		return nil, malformed("%d function bodies for %d functions", n, len(w.funcTypes))
	}
	out := appendU32(make([]byte, 0, len(payload)+len(payload)/4), n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		fn, err := r.bytesU32()
		if err != nil {
			return nil, malformed("function %d: %v", i, err)
		}
		if body, err = w.body(body[:0], fn, w.typeParams[w.funcTypes[i]]); err != nil {
			return nil, malformed("function %d: %v", i, err)
		}
		out = append(appendU32(out, uint32(len(body))), body...)
	}
	return out, w.end(&r, "code")
}

// charge appends the fuel check: spend the fuel the i32 on top of the stack
// (or cost, when scratch is unused) says, and yield when none is left.
//
//	global.get $fuel  <cost>  i32.sub  global.set $fuel
//	global.get $fuel  i32.const 0  i32.le_s
//	if  call $yield  i32.const <fuel>  global.set $fuel  end
func (w *rewriter) charge(dst, cost []byte) []byte {
	g := appendU32([]byte{0x23}, w.fuelGlobal)
	dst = append(append(dst, g...), cost...)
	dst = appendU32(append(dst, 0x6b, 0x24), w.fuelGlobal)        // i32.sub global.set
	dst = append(append(dst, g...), 0x41, 0x00, 0x4c, 0x04, 0x40) // i32.const 0 i32.le_s if
	dst = appendU32(append(dst, 0x10), w.importedFuncs)           // call $yield
	dst = append(appendS64(append(dst, 0x41), int64(w.fuel)), 0x24)
	return append(appendU32(dst, w.fuelGlobal), 0x0b)
}

// Bulk operations are charged by size: one unit per 64 KiB of memory or 8 Ki
// table entries, so that a straight run of them cannot outlast the deadline
// between yields the way it could at one unit each.
const (
	memoryShift = 16
	tableShift  = 13
)

// body rewrites one function: a scratch local is added for the charge of
// bulk operations, fuel is charged at entry (recursion needs no loop),
// at every loop header and before every bulk operation, and indexes of
// functions and globals are renumbered or checked.
func (w *rewriter) body(dst, fn []byte, params uint32) ([]byte, error) {
	r := reader{b: fn}
	groups, err := r.count()
	if err != nil {
		return nil, err
	}
	groupsEnd := r.off
	var locals uint64
	for i := uint32(0); i < groups; i++ {
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		if locals += uint64(n); locals >= MaxLocals {
			return nil, fmt.Errorf("more than %d locals", MaxLocals)
		}
		if _, err := r.byte(); err != nil {
			return nil, err
		}
	}
	scratch := uint32(uint64(params) + locals)
	dst = appendU32(dst, groups+1)
	dst = append(dst, fn[groupsEnd:r.off]...)
	dst = append(dst, 0x01, 0x7f) // one more i32: the scratch local

	unit := []byte{0x41, 0x01} // i32.const 1
	dst = w.charge(dst, unit)
	for !r.done() {
		if dst, err = w.instr(dst, &r, unit, scratch); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// constExpr copies a constant expression up to and including its end,
// renumbering ref.func.
func (w *rewriter) constExpr(dst []byte, r *reader) ([]byte, error) {
	for {
		if r.done() {
			return nil, errShort
		}
		op := r.rest()[0]
		var err error
		if dst, err = w.instr(dst, r, nil, 0); err != nil {
			return nil, err
		}
		if op == 0x0b {
			return dst, nil
		}
	}
}

// instr copies one instruction, renumbering function indexes. In a function
// body (unit set) it also charges fuel after loop headers and before bulk
// operations, and refuses global indexes past the module's own: those would
// reach the fuel global.
func (w *rewriter) instr(dst []byte, r *reader, unit []byte, scratch uint32) ([]byte, error) {
	start := r.off
	op, err := r.byte()
	if err != nil {
		return nil, err
	}
	fail := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, start, err)
	}
	switch op {
	case 0x10, 0x12, 0xd2: // call, return_call, ref.func
		f, err := r.u32()
		if err != nil {
			return fail(err)
		}
		return appendU32(append(dst, op), w.fn(f)), nil
	case 0x23, 0x24: // global.get, global.set
		g, err := r.u32()
		if err != nil {
			return fail(err)
		}
		if g >= w.fuelGlobal && unit != nil {
			return fail(fmt.Errorf("global %d does not exist", g))
		}
		return appendU32(append(dst, op), g), nil
	case 0xfc:
		sub, err := (&reader{b: r.b, off: r.off}).u32()
		if err == nil && unit != nil {
			if shift, ok := bulkShift(sub); ok {
				// The size operand is on top of the stack: keep a copy in the
				// scratch local and charge for it.
				dst = appendU32(append(dst, 0x22), scratch) // local.tee
				cost := appendU32([]byte{0x20}, scratch)    // local.get
				cost = append(cost, 0x41, shift, 0x76)      // i32.const shift i32.shr_u
				dst = w.charge(dst, cost)
			}
		}
	}
	if err := skipImmediates(r, op); err != nil {
		return fail(err)
	}
	dst = append(dst, r.b[start:r.off]...)
	if op == 0x03 && unit != nil { // loop
		dst = w.charge(dst, unit)
	}
	return dst, nil
}

// bulkShift says whether 0xfc sub-opcode sub is a bulk operation whose last
// operand is a size, and how to scale that size into fuel.
func bulkShift(sub uint32) (byte, bool) {
	switch sub {
	case 8, 10, 11: // memory.init, memory.copy, memory.fill
		return memoryShift, true
	case 12, 14, 17: // table.init, table.copy, table.fill
		return tableShift, true
	}
	return 0, false
}

// skipImmediates advances r past the immediates of opcode op.
func skipImmediates(r *reader, op byte) error {
	var err error
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1:
		// unreachable, nop, else, end, return, drop, select, ref.is_null
	case op >= 0x02 && op <= 0x04: // block, loop, if
		err = r.blockType()
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0xd2 ||
		(op >= 0x20 && op <= 0x26): // br, br_if, call, return_call, ref.func, local.*, global.*, table.get/set
		_, err = r.u32()
	case op == 0x0e: // br_table
		var n uint32
		if n, err = r.u32(); err == nil {
			for i := uint32(0); i <= n && err == nil; i++ {
				_, err = r.u32()
			}
		}
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case op == 0x1c: // select t*
		var n uint32
		if n, err = r.u32(); err == nil {
			err = r.skip(int(n))
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		err = r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		_, err = r.u32()
	case op == 0x41:
		err = r.leb(5)
	case op == 0x42:
		err = r.leb(10)
	case op == 0x43:
		err = r.skip(4)
	case op == 0x44:
		err = r.skip(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null t
		_, err = r.byte()
	case op == 0xfc:
		err = skipFC(r)
	case op == 0xfd:
		err = skipFD(r)
	case op == 0xfe:
		err = skipFE(r)
	default:
		err = errors.New("unsupported instruction")
	}
	return err
}

func skipFC(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // saturating truncation
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // one index
		_, err = r.u32()
	default:
		err = fmt.Errorf("unsupported 0xfc sub-opcode %d", sub)
	}
	return err
}

func skipFD(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // v128 loads and stores
		return r.memarg()
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
		return r.skip(16)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		return r.skip(1)
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
		if err := r.memarg(); err != nil {
			return err
		}
		return r.skip(1)
	case sub <= 0x113:
		return nil
	}
	return fmt.Errorf("unsupported 0xfd sub-opcode %d", sub)
}

func skipFE(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	if sub == 0x03 { // atomic.fence
		return r.skip(1)
	}
	if sub <= 0x4e {
		return r.memarg()
	}
	return fmt.Errorf("unsupported 0xfe sub-opcode %d", sub)
}

// importKinds names the kinds of import by their byte.
var importKinds = []string{"function", "table", "memory", "global", "tag"}

// ObjectImport names the first import of bin that is not a function ("global
// env.g", "table env.t", a memory or a tag), or returns "" if bin imports
// only functions: a host that gives its guests functions only refuses the
// others before instantiating. (wazero's compiled module lists only
// imported functions and memories, and its instantiation fails on another
// with "module[env] not instantiated", which names no import.)
func ObjectImport(bin []byte) (string, error) {
	w := &rewriter{hostModule: "\x00", yield: "\x00"}
	err := w.scan(bin)
	return w.object, err
}

// Check runs the structural checks of Instrument without keeping the
// rewrite, for modules loaded unprotected: wazero must never see bytes that
// could make its decoder allocate without bound.
func Check(bin []byte) error {
	_, err := Instrument(bin, "\x00", "\x00", 1)
	return err
}
