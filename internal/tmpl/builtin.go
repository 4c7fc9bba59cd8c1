package tmpl

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"text/template/parse"
	"unicode"
	"unicode/utf8"
)

// builtin is a function of text/template's that takes its arguments as they are, of any type.
type builtin struct {
	min, max int // how many arguments; max -1: no limit
	// fn computes the result. It is nil for and and or, which evaluate their arguments one
	// at a time and return the first whose truth is stopAt, else the last.
	fn     func(args []reflect.Value) (reflect.Value, error)
	stopAt bool
}

// builtins returns the functions every template has: text/template's.
func builtins() map[string]any {
	return map[string]any{
		"and":   builtin{min: 1, max: -1, stopAt: false},
		"or":    builtin{min: 1, max: -1, stopAt: true},
		"not":   builtin{min: 1, max: 1, fn: not},
		"len":   builtin{min: 1, max: 1, fn: length},
		"index": builtin{min: 1, max: -1, fn: index},
		"slice": builtin{min: 1, max: -1, fn: slice},
		"call":  builtin{min: 1, max: -1, fn: call},
		"eq":    builtin{min: 1, max: -1, fn: eq},
		"ne":    builtin{min: 2, max: 2, fn: compare(func(c int) bool { return c != 0 })},
		"lt":    builtin{min: 2, max: 2, fn: compare(func(c int) bool { return c < 0 })},
		"le":    builtin{min: 2, max: 2, fn: compare(func(c int) bool { return c <= 0 })},
		"gt":    builtin{min: 2, max: 2, fn: compare(func(c int) bool { return c > 0 })},
		"ge":    builtin{min: 2, max: 2, fn: compare(func(c int) bool { return c >= 0 })},
		// Go functions, called as a FuncMap's are.
		"print":    fmt.Sprint,
		"printf":   fmt.Sprintf,
		"println":  fmt.Sprintln,
		"html":     func(args ...any) string { return escapeHTML(text(args)) },
		"js":       func(args ...any) string { return escapeJS(text(args)) },
		"urlquery": func(args ...any) string { return url.QueryEscape(text(args)) },
	}
}

func (s *state) callBuiltin(dot reflect.Value, id *parse.IdentifierNode, b builtin, args []parse.Node, final piped) (reflect.Value, error) {
	numIn := len(args)
	if final.ok {
		numIn++
	}
	switch {
	case b.max < 0 && numIn < b.min:
		return reflect.Value{}, s.errorf(id, "wrong number of args for %s: want at least %d got %d", id.Ident, b.min, len(args))
	case b.max >= 0 && (numIn < b.min || numIn > b.max):
		return reflect.Value{}, s.errorf(id, "wrong number of args for %s: want %d got %d", id.Ident, b.max, numIn)
	}
	var v reflect.Value
	if b.fn == nil { // and, or
		for _, a := range args {
			var err error
			if v, err = s.evalValue(dot, a); err != nil || truth(v) == b.stopAt {
				return v, err
			}
		}
		if final.ok {
			v = final.value
		}
		return v, nil
	}
	argv := make([]reflect.Value, 0, numIn)
	for _, a := range args {
		v, err := s.evalValue(dot, a)
		if err != nil {
			return v, err
		}
		argv = append(argv, v)
	}
	if final.ok {
		argv = append(argv, final.value)
	}
	v, err := callSafely(func() (reflect.Value, error) { return b.fn(argv) })
	if err != nil {
		return v, s.errorf(id, "error calling %s: %w", id.Ident, err)
	}
	return v, nil
}

// truth is what if sees: a value that is not its type's zero, a non-empty string, slice or map.
func truth(v reflect.Value) bool {
	v = indirectInterface(v)
	switch v.Kind() {
	case reflect.Invalid:
		return false
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() > 0
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
		return !v.IsNil()
	case reflect.Struct:
		return true
	}
	switch numberKind(v) {
	case boolKind:
		return v.Bool()
	case intKind:
		return v.Int() != 0
	case uintKind:
		return v.Uint() != 0
	case floatKind:
		return v.Float() != 0
	case complexKind:
		return v.Complex() != 0
	}
	return false
}

func not(args []reflect.Value) (reflect.Value, error) { return reflect.ValueOf(!truth(args[0])), nil }

func length(args []reflect.Value) (reflect.Value, error) {
	v, isNil := indirect(args[0])
	switch {
	case isNil:
		return v, errors.New("len of nil pointer")
	case !v.IsValid():
		return v, errors.New("len of nil")
	}
	switch v.Kind() {
	case reflect.Array, reflect.Chan, reflect.Map, reflect.Slice, reflect.String:
		return reflect.ValueOf(v.Len()), nil
	}
	return v, fmt.Errorf("len of type %s", v.Type())
}

// index is item[i][j]...: a missing map key gives the element type's zero.
func index(args []reflect.Value) (reflect.Value, error) {
	item := indirectInterface(args[0])
	if !item.IsValid() {
		return item, errors.New("index of untyped nil")
	}
	for _, i := range args[1:] {
		i = indirectInterface(i)
		var isNil bool
		if item, isNil = indirect(item); isNil {
			return item, errors.New("index of nil pointer")
		}
		switch item.Kind() {
		case reflect.Array, reflect.Slice, reflect.String:
			x, err := position(i, item.Len()-1)
			if err != nil {
				return item, err
			}
			item = item.Index(x)
		case reflect.Map:
			key, err := assignable(i, item.Type().Key())
			if err != nil {
				return item, err
			}
			if elem := item.MapIndex(key); elem.IsValid() {
				item = elem
			} else {
				item = reflect.Zero(item.Type().Elem())
			}
		default:
			return item, fmt.Errorf("can't index item of type %s", item.Type())
		}
	}
	return item, nil
}

// slice is item[i:j:k], with one to three indexes or none.
func slice(args []reflect.Value) (reflect.Value, error) {
	item := indirectInterface(args[0])
	if !item.IsValid() {
		return item, errors.New("slice of untyped nil")
	}
	item, isNil := indirect(item)
	indexes := args[1:]
	switch {
	case isNil:
		return item, errors.New("slice of nil pointer")
	case len(indexes) > 3:
		return item, fmt.Errorf("too many slice indexes: %d", len(indexes))
	}
	limit := item.Len()
	switch item.Kind() {
	case reflect.String:
		if len(indexes) == 3 {
			return item, errors.New("cannot 3-index slice a string")
		}
	case reflect.Array, reflect.Slice:
		limit = item.Cap()
	default:
		return item, fmt.Errorf("can't slice item of type %s", item.Type())
	}
	bounds := [3]int{0, item.Len()}
	for n, i := range indexes {
		x, err := position(i, limit)
		if err != nil {
			return item, err
		}
		bounds[n] = x
	}
	if bounds[0] > bounds[1] {
		return item, fmt.Errorf("invalid slice index: %d > %d", bounds[0], bounds[1])
	}
	if len(indexes) < 3 {
		return item.Slice(bounds[0], bounds[1]), nil
	}
	if bounds[1] > bounds[2] {
		return item, fmt.Errorf("invalid slice index: %d > %d", bounds[1], bounds[2])
	}
	return item.Slice3(bounds[0], bounds[1], bounds[2]), nil
}

// position reads an index from 0 to most.
func position(i reflect.Value, most int) (int, error) {
	var x int64
	switch numberKind(i) {
	case intKind:
		x = i.Int()
	case uintKind:
		x = int64(i.Uint())
	default:
		if !i.IsValid() {
			return 0, errors.New("cannot index slice/array with nil")
		}
		return 0, fmt.Errorf("cannot index slice/array with type %s", i.Type())
	}
	if x < 0 || int(x) < 0 || int(x) > most {
		return 0, fmt.Errorf("index out of range: %d", x)
	}
	return int(x), nil
}

// assignable makes v an argument of type typ: nil becomes typ's nil, integers convert.
func assignable(v reflect.Value, typ reflect.Type) (reflect.Value, error) {
	switch {
	case !v.IsValid() && canBeNil(typ):
		return reflect.Zero(typ), nil
	case !v.IsValid():
		return v, fmt.Errorf("value is nil; should be of type %s", typ)
	case v.Type().AssignableTo(typ):
		return v, nil
	case isInteger(kindOf(v.Kind())) && isInteger(kindOf(typ.Kind())):
		return v.Convert(typ), nil
	}
	return v, fmt.Errorf("value has type %s; should be %s", v.Type(), typ)
}

// call calls a function value: call .F 1 2 is .F(1, 2).
func call(args []reflect.Value) (reflect.Value, error) {
	fn := indirectInterface(args[0])
	if !fn.IsValid() {
		return fn, errors.New("call of nil")
	}
	typ := fn.Type()
	if typ.Kind() != reflect.Func {
		return fn, fmt.Errorf("non-function of type %s", typ)
	}
	if err := checkFunc("call", fn.Interface()); err != nil {
		return fn, err
	}
	args = args[1:]
	last := typ.NumIn() - 1
	switch {
	case typ.IsVariadic() && len(args) < last:
		return fn, fmt.Errorf("wrong number of args: got %d want at least %d", len(args), last)
	case !typ.IsVariadic() && len(args) != typ.NumIn():
		return fn, fmt.Errorf("wrong number of args: got %d want %d", len(args), typ.NumIn())
	}
	argv := make([]reflect.Value, len(args))
	for i, a := range args {
		param := typ.In(min(i, last))
		if typ.IsVariadic() && i >= last {
			param = param.Elem()
		}
		var err error
		if argv[i], err = assignable(indirectInterface(a), param); err != nil {
			return fn, fmt.Errorf("arg %d: %w", i, err)
		}
	}
	out := fn.Call(argv)
	if len(out) == 2 && !out[1].IsNil() {
		return out[0], out[1].Interface().(error)
	}
	return out[0], nil
}

// valueKind groups the kinds that compare: each with itself, and ints with uints.
type valueKind int

const (
	otherKind valueKind = iota
	boolKind
	intKind
	uintKind
	floatKind
	complexKind
	stringKind
)

func numberKind(v reflect.Value) valueKind { return kindOf(v.Kind()) }

func isInteger(k valueKind) bool { return k == intKind || k == uintKind }

func kindOf(k reflect.Kind) valueKind {
	switch {
	case k == reflect.Bool:
		return boolKind
	case k >= reflect.Int && k <= reflect.Int64:
		return intKind
	case k >= reflect.Uint && k <= reflect.Uintptr:
		return uintKind
	case k == reflect.Float32 || k == reflect.Float64:
		return floatKind
	case k == reflect.Complex64 || k == reflect.Complex128:
		return complexKind
	case k == reflect.String:
		return stringKind
	}
	return otherKind
}

var (
	errIncompatible = errors.New("incompatible types for comparison")
	errNotOrdered   = errors.New("invalid type for comparison")
)

// eq is a == b || a == c || ...
func eq(args []reflect.Value) (reflect.Value, error) {
	if len(args) < 2 {
		return reflect.Value{}, errors.New("missing argument for comparison")
	}
	a := indirectInterface(args[0])
	for _, b := range args[1:] {
		if same, err := equal(a, indirectInterface(b)); err != nil || same {
			return reflect.ValueOf(same), err
		}
	}
	return reflect.ValueOf(false), nil
}

func equal(a, b reflect.Value) (bool, error) {
	ka, kb := numberKind(a), numberKind(b)
	switch {
	case ka == otherKind && kb == otherKind:
		return equalOther(a, b)
	case ka == boolKind && kb == boolKind:
		return a.Bool() == b.Bool(), nil
	case ka == complexKind && kb == complexKind:
		return a.Complex() == b.Complex(), nil
	case !a.IsValid() || !b.IsValid(): // nil is no number, string or bool
		return false, nil
	}
	c, err := order(a, b)
	return c == 0 && err == nil, err
}

// equalOther compares values that are no numbers, strings or bools: nil with nil, else as
// Go's == does.
func equalOther(a, b reflect.Value) (bool, error) {
	if a.Kind() != b.Kind() && a.IsValid() && b.IsValid() {
		return false, fmt.Errorf("non-comparable types %s: %v, %s: %v", a, a.Type(), b.Type(), b)
	}
	if isNil(a) || isNil(b) {
		return isNil(a) == isNil(b), nil
	}
	if !b.Type().Comparable() {
		return false, fmt.Errorf("non-comparable type %s: %v", b, b.Type())
	}
	return a.Interface() == b.Interface(), nil
}

func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Invalid:
		return true
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return v.IsNil()
	}
	return false
}

// compare makes ne, lt, le, gt and ge from order's result.
func compare(holds func(c int) bool) func(args []reflect.Value) (reflect.Value, error) {
	return func(args []reflect.Value) (reflect.Value, error) {
		a, b := indirectInterface(args[0]), indirectInterface(args[1])
		if holds(1) && holds(-1) { // ne: anything equal compares
			same, err := equal(a, b)
			return reflect.ValueOf(!same), err
		}
		c, err := order(a, b)
		return reflect.ValueOf(holds(c)), err
	}
}

// order compares numbers with numbers of their kind (ints with uints too) and strings with
// strings: -1, 0, 1, or unordered for a NaN.
func order(a, b reflect.Value) (int, error) {
	ka, kb := numberKind(a), numberKind(b)
	switch {
	case ka == otherKind || kb == otherKind:
		return 0, errNotOrdered
	case ka == intKind && kb == uintKind:
		if a.Int() < 0 {
			return -1, nil
		}
		return cmp.Compare(uint64(a.Int()), b.Uint()), nil
	case ka == uintKind && kb == intKind:
		if b.Int() < 0 {
			return 1, nil
		}
		return cmp.Compare(a.Uint(), uint64(b.Int())), nil
	case ka != kb:
		return 0, errIncompatible
	}
	switch ka {
	case intKind:
		return cmp.Compare(a.Int(), b.Int()), nil
	case uintKind:
		return cmp.Compare(a.Uint(), b.Uint()), nil
	case stringKind:
		return strings.Compare(a.String(), b.String()), nil
	case floatKind:
		x, y := a.Float(), b.Float()
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		case x == y:
			return 0, nil
		}
		return unordered, nil
	}
	return 0, errNotOrdered // bool, complex
}

// unordered is order's result for a NaN: not less, so gt and ge hold, as in text/template,
// where gt is !le and ge is !lt.
const unordered = 2

// sortedKeys returns a map's keys in the order range visits them.
func sortedKeys(m reflect.Value) []reflect.Value {
	keys := m.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int {
		if c, err := order(a, b); err == nil && c != unordered {
			return c
		}
		if numberKind(a) == floatKind { // NaNs first
			return cmp.Compare(a.Float(), b.Float())
		}
		if numberKind(a) == boolKind {
			return cmp.Compare(boolInt(a.Bool()), boolInt(b.Bool()))
		}
		return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
	})
	return keys
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// text is what print would make of args, but nil prints as "<no value>", as in an action.
func text(args []any) string {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok {
			return s
		}
	}
	for i, a := range args {
		if p, ok := printable(reflect.ValueOf(a)); ok {
			args[i] = p
		}
	}
	return fmt.Sprint(args...)
}

func escapeHTML(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case 0:
			b.WriteString("\uFFFD")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeJS makes s safe inside a JavaScript string: quotes and backslashes escaped, < > & =
// and control and unprintable characters as \uXXXX.
func escapeJS(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\' || r == '\'' || r == '"':
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case r == '<' || r == '>' || r == '&' || r == '=' || r < ' ':
			fmt.Fprintf(&b, `\u%04X`, r)
		case r >= utf8.RuneSelf && !unicode.IsPrint(r): // an invalid byte is RuneError, printable
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
