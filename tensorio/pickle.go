package tensorio

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// A minimal, safe interpreter of the pickle opcodes torch.save writes (pickle
// protocol 2, plus the few protocol 4 opcodes newer writers emit). It builds
// plain values and never calls anything: a global is just its name, and a
// REDUCE of a global it does not know yields an opaque pkObject. It recognises
//
//	torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)  -> pkTensor
//	torch._utils._rebuild_parameter(tensor, ...)                          -> pkTensor
//	collections.OrderedDict()                                             -> *pkDict
//	persistent id ('storage', torch.XStorage, key, location, numel)       -> pkStorage
//
// Every size it reads is checked against the bytes that remain, the stack, the
// mark stack and the memo are bounded, and no value is walked recursively, so
// no input can make it panic, loop or allocate without bound.

// Limits of the pickle interpreter.
const (
	maxPickleStack = 1 << 16
	maxPickleMarks = 1 << 10
	maxPickleMemo  = 1 << 16
	maxPickleLine  = 1 << 10 // GLOBAL module and name lines
	maxTensorDims  = 64
)

type (
	pkTuple []any
	pkList  struct{ items []any }
	pkDict  struct {
		keys, vals []any
		index      map[any]int // position of each simple (comparable) key
	}
	pkGlobal struct{ module, name string }
	// pkObject is the opaque result of calling or instantiating a global the
	// interpreter does not know.
	pkObject struct{ class pkGlobal }
	// pkStorage is a tensor storage: numel elements of dtype, stored in the
	// archive at data/<key>.
	pkStorage struct {
		class    string // the storage class, e.g. torch.BFloat16Storage
		dtype    string // one of the Dtype constants, "" when unsupported
		key      string
		location string
		numel    int64
	}
	// pkTensor is a strided view of a storage.
	pkTensor struct {
		storage      pkStorage
		offset       int64
		size, stride []int64
	}
)

// storageDtypes maps torch's storage classes to element types.
var storageDtypes = map[string]string{
	"torch.BFloat16Storage": BFloat16,
	"torch.FloatStorage":    Float32,
	"torch.HalfStorage":     Float16,
	"torch.DoubleStorage":   Float64,
	"torch.IntStorage":      Int32,
	"torch.LongStorage":     Int64,
}

// unpickle runs the pickle program p and returns the value STOP leaves.
func unpickle(p []byte) (any, error) {
	u := &unpickler{p: p, memo: map[uint32]any{}}
	v, err := u.run()
	if err != nil {
		return nil, fmt.Errorf("pickle byte %d: %w", u.op, err)
	}
	return v, nil
}

type unpickler struct {
	p     []byte
	i, op int // read position; offset of the current opcode
	stack []any
	marks []int
	memo  map[uint32]any
}

func (u *unpickler) need(n int) ([]byte, error) {
	if n < 0 || n > len(u.p)-u.i {
		return nil, fmt.Errorf("opcode %q needs %d bytes, %d remain", u.p[u.op], n, len(u.p)-u.i)
	}
	b := u.p[u.i : u.i+n]
	u.i += n
	return b, nil
}

func (u *unpickler) line() (string, error) {
	for j := u.i; j < len(u.p) && j-u.i <= maxPickleLine; j++ {
		if u.p[j] == '\n' {
			s := string(u.p[u.i:j])
			u.i = j + 1
			return s, nil
		}
	}
	return "", fmt.Errorf("opcode %q: no newline within %d bytes", u.p[u.op], maxPickleLine)
}

func (u *unpickler) push(v any) error {
	if len(u.stack) >= maxPickleStack {
		return fmt.Errorf("stack deeper than %d", maxPickleStack)
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 || u.topIsMarkBoundary() {
		return nil, fmt.Errorf("opcode %q pops an empty stack", u.p[u.op])
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

// topIsMarkBoundary reports whether the stack top is at the innermost mark, so
// that a plain pop would cross into the marked region's outside.
func (u *unpickler) topIsMarkBoundary() bool {
	return len(u.marks) > 0 && u.marks[len(u.marks)-1] == len(u.stack)
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 || u.topIsMarkBoundary() {
		return nil, fmt.Errorf("opcode %q reads an empty stack", u.p[u.op])
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the items pushed since the innermost MARK and removes them
// and the mark.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, fmt.Errorf("opcode %q without a MARK", u.p[u.op])
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) put(idx uint32) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := u.memo[idx]; !ok && len(u.memo) >= maxPickleMemo {
		return fmt.Errorf("memo larger than %d entries", maxPickleMemo)
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) get(idx uint32) error {
	v, ok := u.memo[idx]
	if !ok {
		return fmt.Errorf("memo entry %d was never stored", idx)
	}
	return u.push(v)
}

func (u *unpickler) run() (any, error) {
	for u.i < len(u.p) {
		u.op = u.i
		op := u.p[u.i]
		u.i++
		if err := u.step(op); err != nil {
			if err == errStop {
				v, err := u.pop()
				if err != nil {
					return nil, err
				}
				if len(u.stack) != 0 || len(u.marks) != 0 {
					return nil, fmt.Errorf("STOP leaves %d values and %d marks on the stack", len(u.stack), len(u.marks))
				}
				return v, nil
			}
			return nil, err
		}
	}
	u.op = u.i
	return nil, fmt.Errorf("pickle ends without STOP")
}

type stopError struct{}

func (stopError) Error() string { return "STOP" }

var errStop error = stopError{}

// uintArg reads the current opcode's n-byte little-endian unsigned argument
// (0 <= n <= 8): a count, a length, a memo index or an int's bytes.
func (u *unpickler) uintArg(n int) (uint64, error) {
	b, err := u.need(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for k := n - 1; k >= 0; k-- {
		v = v<<8 | uint64(b[k])
	}
	return v, nil
}

// memoIndex reads the memo index argument of BINPUT and BINGET (short, one
// byte) or of LONG_BINPUT and LONG_BINGET (four bytes).
func (u *unpickler) memoIndex(short bool) (uint32, error) {
	n := 4
	if short {
		n = 1
	}
	v, err := u.uintArg(n)
	return uint32(v), err
}

// pushString reads a string whose length precedes it in lenBytes
// little-endian bytes, and pushes it.
func (u *unpickler) pushString(lenBytes int) error {
	n, err := u.uintArg(lenBytes)
	if err != nil {
		return err
	}
	if n > uint64(len(u.p)-u.i) {
		return fmt.Errorf("string of %d bytes, %d remain", n, len(u.p)-u.i)
	}
	s, _ := u.need(int(n))
	return u.push(string(s))
}

// popN pops the top n values, none of them across the innermost mark, and
// returns them in stack order (the deepest first).
func (u *unpickler) popN(n int) ([]any, error) {
	items := make([]any, n)
	for k := n - 1; k >= 0; k-- {
		v, err := u.pop()
		if err != nil {
			return nil, err
		}
		items[k] = v
	}
	return items, nil
}

// popItems returns the items an APPEND-like opcode adds to a container: the
// top n values for the single form (APPEND, SETITEM), everything since the
// innermost MARK for the batched one (APPENDS, SETITEMS).
func (u *unpickler) popItems(single bool, n int) ([]any, error) {
	if single {
		return u.popN(n)
	}
	return u.popMark()
}

// step executes one opcode.
func (u *unpickler) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		v, err := u.uintArg(1)
		if err != nil {
			return err
		}
		if v > 5 {
			return fmt.Errorf("pickle protocol %d is not supported", v)
		}
	case 0x95: // FRAME: an 8-byte length; frames need no special handling
		_, err := u.need(8)
		return err
	case '.': // STOP
		return errStop
	case '(': // MARK
		if len(u.marks) >= maxPickleMarks {
			return fmt.Errorf("more than %d nested marks", maxPickleMarks)
		}
		u.marks = append(u.marks, len(u.stack))
	case '0': // POP
		_, err := u.pop()
		return err
	case '1': // POP_MARK
		_, err := u.popMark()
		return err
	case '2': // DUP
		v, err := u.top()
		if err != nil {
			return err
		}
		return u.push(v)
	case 'N': // NONE
		return u.push(nil)
	case 0x88: // NEWTRUE
		return u.push(true)
	case 0x89: // NEWFALSE
		return u.push(false)
	case 'J': // BININT: 4 bytes, signed
		v, err := u.uintArg(4)
		if err != nil {
			return err
		}
		return u.push(int64(int32(v)))
	case 'K', 'M': // BININT1, BININT2: 1 or 2 bytes, unsigned
		n := 1
		if op == 'M' {
			n = 2
		}
		v, err := u.uintArg(n)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case 0x8a: // LONG1: n bytes of little-endian two's complement
		n, err := u.uintArg(1)
		if err != nil {
			return err
		}
		if n > 8 {
			return fmt.Errorf("LONG1 of %d bytes does not fit int64", n)
		}
		v, err := u.uintArg(int(n))
		if err != nil {
			return err
		}
		if n > 0 && n < 8 && v>>(8*n-1) != 0 { // sign-extend
			v |= ^uint64(0) << (8 * n)
		}
		return u.push(int64(v))
	case 'G': // BINFLOAT, big-endian
		b, err := u.need(8)
		if err != nil {
			return err
		}
		return u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 'T': // BINUNICODE, BINSTRING: 4-byte length
		return u.pushString(4)
	case 0x8c, 'U', 'C': // SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES: 1-byte length
		return u.pushString(1)
	case 'c': // GLOBAL module\nname\n
		mod, err := u.line()
		if err != nil {
			return err
		}
		name, err := u.line()
		if err != nil {
			return err
		}
		return u.push(pkGlobal{mod, name})
	case 0x93: // STACK_GLOBAL
		mn, err := u.popN(2)
		if err != nil {
			return err
		}
		ms, ok1 := mn[0].(string)
		ns, ok2 := mn[1].(string)
		if !ok1 || !ok2 {
			return fmt.Errorf("STACK_GLOBAL of non-strings %s, %s", describe(mn[0]), describe(mn[1]))
		}
		return u.push(pkGlobal{ms, ns})
	case 'q', 'r': // BINPUT, LONG_BINPUT: a 1- or 4-byte memo index
		idx, err := u.memoIndex(op == 'q')
		if err != nil {
			return err
		}
		return u.put(idx)
	case 0x94: // MEMOIZE
		return u.put(uint32(len(u.memo)))
	case 'h', 'j': // BINGET, LONG_BINGET: a 1- or 4-byte memo index
		idx, err := u.memoIndex(op == 'h')
		if err != nil {
			return err
		}
		return u.get(idx)
	case ')': // EMPTY_TUPLE
		return u.push(pkTuple{})
	case 't': // TUPLE
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(pkTuple(items))
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		items, err := u.popN(int(op - 0x84))
		if err != nil {
			return err
		}
		return u.push(pkTuple(items))
	case ']': // EMPTY_LIST
		return u.push(&pkList{})
	case 'l': // LIST
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&pkList{items: items})
	case 'a', 'e': // APPEND, APPENDS
		items, err := u.popItems(op == 'a', 1)
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		l, ok := t.(*pkList)
		if !ok {
			return fmt.Errorf("APPEND to %s, not a list", describe(t))
		}
		if len(l.items)+len(items) > maxPickleStack {
			return fmt.Errorf("list longer than %d", maxPickleStack)
		}
		l.items = append(l.items, items...)
	case '}': // EMPTY_DICT
		return u.push(&pkDict{})
	case 'd': // DICT
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := &pkDict{}
		if err := d.set(items); err != nil {
			return err
		}
		return u.push(d)
	case 's', 'u': // SETITEM, SETITEMS
		items, err := u.popItems(op == 's', 2)
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		d, ok := t.(*pkDict)
		if !ok {
			return fmt.Errorf("SETITEM on %s, not a dict", describe(t))
		}
		return d.set(items)
	case 'Q': // BINPERSID
		pid, err := u.pop()
		if err != nil {
			return err
		}
		s, err := persistentStorage(pid)
		if err != nil {
			return err
		}
		return u.push(s)
	case 'R': // REDUCE
		fa, err := u.popN(2)
		if err != nil {
			return err
		}
		v, err := reduce(fa[0], fa[1])
		if err != nil {
			return err
		}
		return u.push(v)
	case 0x81: // NEWOBJ: cls.__new__(cls, *args), opaque
		ca, err := u.popN(2)
		if err != nil {
			return err
		}
		g, ok := ca[0].(pkGlobal)
		if !ok {
			return fmt.Errorf("NEWOBJ of %s, not a class", describe(ca[0]))
		}
		return u.push(pkObject{g})
	case 'b': // BUILD: the state is not applied; the object stays as it is
		if _, err := u.pop(); err != nil {
			return err
		}
		_, err := u.top()
		return err
	default:
		return fmt.Errorf("opcode %#02x is not supported", op)
	}
	return nil
}

// set adds key/value pairs (alternating in items) to d; a key set twice keeps
// its last value, as in Python. Keys of other kinds than string, int, bool and
// None never compare equal.
func (d *pkDict) set(items []any) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("dict items: odd count %d", len(items))
	}
	if d.index == nil {
		d.index = map[any]int{}
	}
	for i := 0; i < len(items); i += 2 {
		k := items[i]
		simple := false
		switch k.(type) {
		case string, int64, bool, nil:
			simple = true
			if j, ok := d.index[k]; ok {
				d.vals[j] = items[i+1]
				continue
			}
		}
		if len(d.keys) >= maxPickleStack {
			return fmt.Errorf("dict larger than %d", maxPickleStack)
		}
		if simple {
			d.index[k] = len(d.keys)
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, items[i+1])
	}
	return nil
}

// persistentStorage interprets torch's persistent id of a storage:
// ('storage', storage class, key, location, numel).
func persistentStorage(pid any) (pkStorage, error) {
	t, ok := pid.(pkTuple)
	if !ok || len(t) != 5 || t[0] != "storage" {
		return pkStorage{}, fmt.Errorf("persistent id %s is not ('storage', class, key, location, numel)", describe(pid))
	}
	cls, ok1 := t[1].(pkGlobal)
	key, ok2 := t[2].(string)
	loc, ok3 := t[3].(string)
	numel, ok4 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 || numel < 0 {
		return pkStorage{}, fmt.Errorf("persistent id %s is not ('storage', class, key, location, numel)", describe(pid))
	}
	name := cls.module + "." + cls.name
	return pkStorage{class: name, dtype: storageDtypes[name], key: key, location: loc, numel: numel}, nil
}

// reduce applies the few callables torch.save pickles, by name; any other
// call yields an opaque object.
func reduce(fn, args any) (any, error) {
	g, ok := fn.(pkGlobal)
	if !ok {
		return nil, fmt.Errorf("REDUCE of %s, not a global", describe(fn))
	}
	a, ok := args.(pkTuple)
	if !ok {
		return nil, fmt.Errorf("REDUCE of %s.%s with arguments %s, not a tuple", g.module, g.name, describe(args))
	}
	switch g.module + "." + g.name {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		if len(a) < 4 {
			return nil, fmt.Errorf("%s.%s with %d arguments, want storage, offset, size, stride", g.module, g.name, len(a))
		}
		s, ok := a[0].(pkStorage)
		if !ok {
			return nil, fmt.Errorf("tensor storage is %s, not a storage", describe(a[0]))
		}
		off, ok := a[1].(int64)
		if !ok || off < 0 {
			return nil, fmt.Errorf("tensor storage offset is %s", describe(a[1]))
		}
		size, err := intTuple("size", a[2])
		if err != nil {
			return nil, err
		}
		stride, err := intTuple("stride", a[3])
		if err != nil {
			return nil, err
		}
		return pkTensor{storage: s, offset: off, size: size, stride: stride}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(a) < 1 {
			return nil, fmt.Errorf("%s.%s without arguments", g.module, g.name)
		}
		t, ok := a[0].(pkTensor)
		if !ok {
			return nil, fmt.Errorf("parameter data is %s, not a tensor", describe(a[0]))
		}
		return t, nil
	case "collections.OrderedDict":
		return &pkDict{}, nil
	}
	return pkObject{g}, nil
}

// intTuple returns a tuple of non-negative ints (a tensor's size or stride).
func intTuple(what string, v any) ([]int64, error) {
	t, ok := v.(pkTuple)
	if !ok {
		return nil, fmt.Errorf("tensor %s is %s, not a tuple", what, describe(v))
	}
	if len(t) > maxTensorDims {
		return nil, fmt.Errorf("tensor %s has %d dimensions, more than %d", what, len(t), maxTensorDims)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("tensor %s %s: entry %d is not a non-negative int", what, describe(v), i)
		}
		out[i] = n
	}
	return out, nil
}

// describe formats a value for an error message, one level deep.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%q", v)
	case int64, bool, float64:
		return fmt.Sprint(v)
	case pkTuple:
		var s []string
		for i, x := range v {
			if i == 8 {
				s = append(s, "...")
				break
			}
			s = append(s, describeShallow(x))
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return describeShallow(v)
}

// describeShallow names a value's kind without looking inside containers.
func describeShallow(v any) string {
	switch v := v.(type) {
	case nil, string, int64, bool, float64:
		return describe(v)
	case pkTuple:
		return fmt.Sprintf("a tuple of %d", len(v))
	case *pkList:
		return fmt.Sprintf("a list of %d", len(v.items))
	case *pkDict:
		return fmt.Sprintf("a dict of %d", len(v.keys))
	case pkGlobal:
		return v.module + "." + v.name
	case pkObject:
		return "a " + v.class.module + "." + v.class.name + " object"
	case pkStorage:
		return "a " + v.class
	case pkTensor:
		return fmt.Sprintf("a tensor %v", v.size)
	}
	return fmt.Sprintf("%T", v)
}
