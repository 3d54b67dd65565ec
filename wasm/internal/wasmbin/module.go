package wasmbin

import "slices"

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
	F64 byte = 0x7c
)

// FuncType is a function signature.
type FuncType struct {
	Params, Results []byte
}

// Import is an imported function or, with Object set, another import.
type Import struct {
	Module, Name string
	Type         FuncType
	// Object, when set, is the kind byte and descriptor of an import that
	// is not a function: {0x03, 0x7f, 0x00} an immutable i32 global,
	// {0x01, 0x70, 0x00, 0x01} a funcref table of at least 1.
	Object []byte
}

// Func is a defined function: its signature, locals and body (instructions
// including the final end).
type Func struct {
	Type   FuncType
	Locals []byte // one value type per local
	Body   []byte
}

// Export names a function (by index in the function space) or, with Memory
// set, the memory.
type Export struct {
	Name   string
	Index  uint32
	Memory bool
}

// Module is a small module assembled from parts, for tests that need
// binaries a compiler would not produce: bad guests, trampolines, fuzz seeds.
type Module struct {
	Imports []Import
	Funcs   []Func
	Memory  *Limits
	Exports []Export
	Globals int // mutable i32 globals, initialised to 0
	// Table, when non-zero, defines a funcref table of that size; Elems
	// fills it from slot 0 (an active segment of function indexes).
	Table uint32
	Elems []uint32
	// Declared lists functions declared for ref.func (a declarative segment).
	Declared []uint32
	// Start names the start function.
	Start *uint32
	// Names, when set, adds a name section naming each function index.
	Names map[uint32]string
}

// Limits of a memory, in 64 KiB pages.
type Limits struct {
	Min uint32
	Max *uint32
}

// Encode returns the binary module.
func (m *Module) Encode() []byte {
	var types []FuncType
	typeIdx := func(t FuncType) uint32 {
		for i, have := range types {
			if string(have.Params) == string(t.Params) && string(have.Results) == string(t.Results) {
				return uint32(i)
			}
		}
		types = append(types, t)
		return uint32(len(types) - 1)
	}
	var imports, funcs, code []byte
	imports = appendU32(imports, uint32(len(m.Imports)))
	for _, im := range m.Imports {
		imports = appendName(imports, im.Module)
		imports = appendName(imports, im.Name)
		if im.Object != nil {
			imports = append(imports, im.Object...)
			continue
		}
		imports = append(imports, 0x00)
		imports = appendU32(imports, typeIdx(im.Type))
	}
	funcs = appendU32(funcs, uint32(len(m.Funcs)))
	code = appendU32(code, uint32(len(m.Funcs)))
	for _, f := range m.Funcs {
		funcs = appendU32(funcs, typeIdx(f.Type))
		body := appendU32(nil, uint32(len(f.Locals)))
		for _, l := range f.Locals {
			body = append(appendU32(body, 1), l)
		}
		body = append(body, f.Body...)
		code = appendU32(code, uint32(len(body)))
		code = append(code, body...)
	}
	var typeSec []byte
	typeSec = appendU32(typeSec, uint32(len(types)))
	for _, t := range types {
		typeSec = append(typeSec, 0x60)
		typeSec = appendU32(typeSec, uint32(len(t.Params)))
		typeSec = append(typeSec, t.Params...)
		typeSec = appendU32(typeSec, uint32(len(t.Results)))
		typeSec = append(typeSec, t.Results...)
	}
	out := append([]byte(nil), magic...)
	out = appendSection(out, secType, typeSec)
	if len(m.Imports) > 0 {
		out = appendSection(out, secImport, imports)
	}
	out = appendSection(out, secFunction, funcs)
	if m.Table > 0 {
		out = appendSection(out, secTable, appendU32(append(appendU32(nil, 1), 0x70, 0x00), m.Table))
	}
	if m.Memory != nil {
		mem := appendU32(nil, 1)
		if m.Memory.Max != nil {
			mem = appendU32(appendU32(append(mem, 0x01), m.Memory.Min), *m.Memory.Max)
		} else {
			mem = appendU32(append(mem, 0x00), m.Memory.Min)
		}
		out = appendSection(out, secMemory, mem)
	}
	if m.Globals > 0 {
		g := appendU32(nil, uint32(m.Globals))
		for i := 0; i < m.Globals; i++ {
			g = append(g, 0x7f, 0x01, 0x41, 0x00, 0x0b)
		}
		out = appendSection(out, secGlobal, g)
	}
	if len(m.Exports) > 0 {
		ex := appendU32(nil, uint32(len(m.Exports)))
		for _, e := range m.Exports {
			ex = appendName(ex, e.Name)
			if e.Memory {
				ex = append(ex, 0x02)
			} else {
				ex = append(ex, 0x00)
			}
			ex = appendU32(ex, e.Index)
		}
		out = appendSection(out, secExport, ex)
	}
	if m.Start != nil {
		out = appendSection(out, secStart, appendU32(nil, *m.Start))
	}
	var elems [][]byte
	if len(m.Elems) > 0 { // flags 0: active, table 0, offset expression, function indexes
		elems = append(elems, appendFuncs(append(appendU32(nil, 0), Cat(I32Const(0), []byte{0x0b})...), m.Elems))
	}
	if len(m.Declared) > 0 { // flags 3: declarative, elemkind 0x00, function indexes
		elems = append(elems, appendFuncs(append(appendU32(nil, 3), 0x00), m.Declared))
	}
	if len(elems) > 0 {
		out = appendSection(out, secElement, append(appendU32(nil, uint32(len(elems))), Cat(elems...)...))
	}
	out = appendSection(out, secCode, code)
	if len(m.Names) > 0 {
		var idx []uint32
		for i := range m.Names {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		sub := appendU32(nil, uint32(len(idx)))
		for _, i := range idx {
			sub = appendName(appendU32(sub, i), m.Names[i])
		}
		out = appendSection(out, secCustom, appendSection(appendName(nil, "name"), 1, sub))
	}
	return out
}

func appendFuncs(b []byte, fs []uint32) []byte {
	b = appendU32(b, uint32(len(fs)))
	for _, f := range fs {
		b = appendU32(b, f)
	}
	return b
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// I32Const returns the instruction i32.const v.
func I32Const(v int32) []byte { return appendS64([]byte{0x41}, int64(v)) }

// Call returns the instruction call f.
func Call(f uint32) []byte { return appendU32([]byte{0x10}, f) }

// LocalGet returns the instruction local.get i.
func LocalGet(i uint32) []byte { return appendU32([]byte{0x20}, i) }

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Cat concatenates instruction sequences.
func Cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
