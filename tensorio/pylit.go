package tensorio

import (
	"fmt"
	"strconv"
)

// pyValue is a parsed Python literal: string, int64, bool, nil (None),
// pyTuple, pyList or *pyDict.
type pyValue any

type (
	pyTuple []pyValue
	pyList  []pyValue
	pyDict  struct {
		keys []string
		vals map[string]pyValue
	}
)

// maxLiteralDepth bounds the nesting of a Python literal, so that a hostile
// header cannot exhaust the stack.
const maxLiteralDepth = 32

// parsePyLiteral parses the Python literal of an npy header: a dict with string
// keys whose values are strings, ints, True/False/None, tuples, lists or dicts.
// Only whitespace may follow it.
func parsePyLiteral(s string) (pyValue, error) {
	p := &pyParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d after the literal", p.s[p.i], p.i)
	}
	return v, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *pyParser) value(depth int) (pyValue, error) {
	if depth > maxLiteralDepth {
		return nil, p.errorf("literal nested deeper than %d", maxLiteralDepth)
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end of header")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict(depth)
	case c == '(':
		return p.seq(depth, ')')
	case c == '[':
		return p.seq(depth, ']')
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.int()
	default:
		for _, w := range []struct {
			word string
			v    pyValue
		}{{"True", true}, {"False", false}, {"None", nil}} {
			if len(p.s)-p.i >= len(w.word) && p.s[p.i:p.i+len(w.word)] == w.word {
				p.i += len(w.word)
				return w.v, nil
			}
		}
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *pyParser) str() (pyValue, error) {
	q := p.s[p.i]
	start := p.i + 1
	for j := start; j < len(p.s); j++ {
		switch p.s[j] {
		case q:
			p.i = j + 1
			return p.s[start:j], nil
		case '\\', '\n':
			p.i = j
			return nil, p.errorf("escapes and newlines in strings are not supported")
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *pyParser) int() (pyValue, error) {
	start := p.i
	if p.s[p.i] == '-' || p.s[p.i] == '+' {
		p.i++
	}
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	lit := p.s[start:p.i]
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') { // Python 2 long, in old npy files
		p.i++
	}
	v, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		p.i = start
		return nil, p.errorf("bad integer %q", lit)
	}
	return v, nil
}

// seq parses a tuple or a list. As in Python, "(x)" without a comma is x
// itself, not a tuple.
func (p *pyParser) seq(depth int, closer byte) (pyValue, error) {
	p.i++ // opener
	var items []pyValue
	comma := false
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == closer {
			p.i++
			break
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unterminated %q", closer)
		}
		if p.s[p.i] == ',' {
			p.i++
			comma = true
			continue
		}
		if p.s[p.i] != closer {
			return nil, p.errorf("want ',' or %q, got %q", closer, p.s[p.i])
		}
	}
	if closer == ']' {
		return pyList(items), nil
	}
	if len(items) == 1 && !comma {
		return items[0], nil
	}
	return pyTuple(items), nil
}

func (p *pyParser) dict(depth int) (pyValue, error) {
	p.i++ // '{'
	d := &pyDict{vals: map[string]pyValue{}}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
			return nil, p.errorf("want a string key or '}'")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		if _, dup := d.vals[key]; dup {
			return nil, p.errorf("duplicate key %q", key)
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errorf("want ':' after key %q", key)
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, key)
		d.vals[key] = v
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unterminated dict")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return d, nil
		default:
			return nil, p.errorf("want ',' or '}' after the value of %q", key)
		}
	}
}
