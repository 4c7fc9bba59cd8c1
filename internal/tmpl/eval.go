package tmpl

import (
	"fmt"
	"reflect"
	"strings"
	"text/template/parse"
)

// piped is the value a pipeline passes to its next command, as that command's last argument.
type piped struct {
	value reflect.Value
	ok    bool // false for the first command
}

// evalPipeline evaluates pipe and declares or assigns its variables; the caller ends their
// scope.
func (s *state) evalPipeline(dot reflect.Value, pipe *parse.PipeNode) (reflect.Value, error) {
	var v reflect.Value
	if pipe == nil {
		return v, nil
	}
	for i, cmd := range pipe.Cmds {
		var err error
		if v, err = s.evalCommand(dot, cmd, piped{v, i > 0}); err != nil {
			return v, err
		}
		if v.Kind() == reflect.Interface && v.Type().NumMethod() == 0 {
			v = v.Elem() // what an any holds, or nothing
		}
	}
	for _, d := range pipe.Decl {
		if pipe.IsAssign {
			if err := s.setVar(lastEvaluated(pipe), d.Ident[0], v); err != nil {
				return v, err
			}
		} else {
			s.vars = append(s.vars, variable{d.Ident[0], v})
		}
	}
	return v, nil
}

func (s *state) evalCommand(dot reflect.Value, cmd *parse.CommandNode, final piped) (reflect.Value, error) {
	args := cmd.Args[1:]
	switch n := cmd.Args[0].(type) {
	case *parse.FieldNode:
		return s.evalFields(n, dot, n.Ident, len(args) > 0 || final.ok)
	case *parse.ChainNode:
		return s.evalChain(dot, n, len(args) > 0 || final.ok)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, args, final)
	case *parse.VariableNode:
		if len(n.Ident) > 1 {
			return s.evalVariable(n, len(args) > 0 || final.ok)
		}
	}
	if len(args) > 0 || final.ok {
		return reflect.Value{}, s.errorf(cmd.Args[0], "can't give argument to non-function %s", cmd.Args[0])
	}
	if _, ok := cmd.Args[0].(*parse.NilNode); ok {
		return reflect.Value{}, s.errorf(cmd, "nil is not a command")
	}
	return s.evalValue(dot, cmd.Args[0])
}

// evalValue evaluates an operand to its value as it is: nil is no value, a number constant
// takes its type from its syntax.
func (s *state) evalValue(dot reflect.Value, n parse.Node) (reflect.Value, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot, nil
	case *parse.NilNode:
		return reflect.Value{}, nil
	case *parse.FieldNode:
		return s.evalFields(n, dot, n.Ident, false)
	case *parse.ChainNode:
		return s.evalChain(dot, n, false)
	case *parse.VariableNode:
		return s.evalVariable(n, false)
	case *parse.PipeNode:
		return s.evalPipeline(dot, n)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, nil, piped{})
	case *parse.BoolNode:
		return reflect.ValueOf(n.True), nil
	case *parse.StringNode:
		return reflect.ValueOf(n.Text), nil
	case *parse.NumberNode:
		return s.evalNumber(n)
	}
	return reflect.Value{}, s.errorf(n, "can't evaluate %s", n)
}

// evalNumber types a constant by its syntax, as Go does for an untyped constant: complex,
// then float when written with a point or an exponent, then int.
func (s *state) evalNumber(n *parse.NumberNode) (reflect.Value, error) {
	hexInt := strings.HasPrefix(n.Text, "0x") || strings.HasPrefix(n.Text, "0X")
	hexInt = hexInt && !strings.ContainsAny(n.Text, "pP")
	switch {
	case n.IsComplex:
		return reflect.ValueOf(n.Complex128), nil
	case n.IsFloat && !hexInt && !strings.HasPrefix(n.Text, "'") && strings.ContainsAny(n.Text, ".eEpP"):
		return reflect.ValueOf(n.Float64), nil
	case n.IsInt && int64(int(n.Int64)) == n.Int64:
		return reflect.ValueOf(int(n.Int64)), nil
	case n.IsInt || n.IsUint:
		return reflect.Value{}, s.errorf(n, "%s overflows int", n.Text)
	}
	return reflect.Value{}, nil // a float too large for an int, written as one
}

func (s *state) evalChain(dot reflect.Value, chain *parse.ChainNode, hasArgs bool) (reflect.Value, error) {
	if _, ok := chain.Node.(*parse.NilNode); ok {
		return reflect.Value{}, s.errorf(chain, "indirection through explicit nil in %s", chain)
	}
	v, err := s.evalValue(dot, chain.Node)
	if err != nil {
		return v, err
	}
	return s.evalFields(chain, v, chain.Field, hasArgs)
}

func (s *state) evalVariable(n *parse.VariableNode, hasArgs bool) (reflect.Value, error) {
	v, err := s.lookupVar(n, n.Ident[0])
	if err != nil || len(n.Ident) == 1 {
		return v, err
	}
	return s.evalFields(n, v, n.Ident[1:], hasArgs)
}

// evalFields follows .A.B.C from v. hasArgs: the last name was given arguments, which only a
// method could take.
func (s *state) evalFields(n parse.Node, v reflect.Value, names []string, hasArgs bool) (reflect.Value, error) {
	for i, name := range names {
		var err error
		if v, err = s.evalField(n, v, name, hasArgs && i == len(names)-1); err != nil {
			return v, err
		}
	}
	return v, nil
}

func (s *state) evalField(n parse.Node, v reflect.Value, name string, hasArgs bool) (reflect.Value, error) {
	if !v.IsValid() {
		return v, s.errorf(n, "nil data; no entry for key %q", name)
	}
	typ := v.Type()
	v, isNil := indirect(v)
	switch v.Kind() {
	case reflect.Struct:
		f, ok := v.Type().FieldByName(name)
		switch {
		case !ok:
		case !f.IsExported():
			return v, s.errorf(n, "%s is an unexported field of struct type %s", name, typ)
		case hasArgs:
			return v, s.errorf(n, "%s has arguments but cannot be invoked as function", name)
		default:
			field, err := v.FieldByIndexErr(f.Index)
			if err != nil {
				return field, s.errorf(n, "%v", err)
			}
			return field, nil
		}
	case reflect.Map:
		if !stringType.AssignableTo(v.Type().Key()) {
			break
		}
		if hasArgs {
			return v, s.errorf(n, "%s is not a method but has arguments", name)
		}
		elem := v.MapIndex(reflect.ValueOf(name))
		if !elem.IsValid() {
			return elem, s.errorf(n, "map has no entry for key %q", name)
		}
		return elem, nil
	case reflect.Interface:
		return v, s.errorf(n, "nil pointer evaluating %s.%s", typ, name)
	case reflect.Pointer:
		if t := v.Type().Elem(); t.Kind() == reflect.Struct {
			if _, ok := t.FieldByName(name); !ok {
				break
			}
		}
		if isNil {
			return v, s.errorf(n, "nil pointer evaluating %s.%s", typ, name)
		}
	}
	return v, s.errorf(n, "can't evaluate field %s in type %s", name, typ)
}

func (s *state) evalFunction(dot reflect.Value, id *parse.IdentifierNode, args []parse.Node, final piped) (reflect.Value, error) {
	switch f := s.t.funcs[id.Ident].(type) {
	case nil:
		return reflect.Value{}, s.errorf(id, "%q is not a defined function", id.Ident)
	case builtin:
		return s.callBuiltin(dot, id, f, args, final)
	default:
		return s.callFunc(dot, id, reflect.ValueOf(f), args, final)
	}
}

// callFunc calls a Go function, each argument converted to its parameter's type.
func (s *state) callFunc(dot reflect.Value, id *parse.IdentifierNode, fn reflect.Value, args []parse.Node, final piped) (reflect.Value, error) {
	typ := fn.Type()
	numIn := len(args)
	if final.ok {
		numIn++
	}
	if min := typ.NumIn() - 1; typ.IsVariadic() && numIn < min {
		return reflect.Value{}, s.errorf(id, "wrong number of args for %s: want at least %d got %d", id.Ident, min, len(args))
	} else if !typ.IsVariadic() && numIn != typ.NumIn() {
		return reflect.Value{}, s.errorf(id, "wrong number of args for %s: want %d got %d", id.Ident, typ.NumIn(), numIn)
	}
	param := func(i int) reflect.Type {
		if last := typ.NumIn() - 1; typ.IsVariadic() && i >= last {
			return typ.In(last).Elem()
		}
		return typ.In(i)
	}
	argv := make([]reflect.Value, numIn)
	for i, a := range args {
		var err error
		if argv[i], err = s.evalArg(dot, param(i), a); err != nil {
			return reflect.Value{}, err
		}
	}
	if final.ok {
		var err error
		if argv[numIn-1], err = s.convert(id, final.value, param(numIn-1)); err != nil {
			return reflect.Value{}, err
		}
	}
	v, err := callSafely(func() (reflect.Value, error) {
		out := fn.Call(argv)
		if len(out) == 2 && !out[1].IsNil() {
			return out[0], out[1].Interface().(error)
		}
		return out[0], nil
	})
	if err != nil {
		return v, s.errorf(id, "error calling %s: %w", id.Ident, err)
	}
	return v, nil
}

// evalArg evaluates n as an argument of type typ: a constant takes that type, a value must
// be assignable to it.
func (s *state) evalArg(dot reflect.Value, typ reflect.Type, n parse.Node) (reflect.Value, error) {
	switch n.(type) {
	case *parse.NilNode:
		if canBeNil(typ) {
			return reflect.Zero(typ), nil
		}
		return reflect.Value{}, s.errorf(n, "cannot assign nil to %s", typ)
	case *parse.BoolNode, *parse.StringNode, *parse.NumberNode:
		return s.evalConstant(dot, typ, n)
	}
	v, err := s.evalValue(dot, n)
	if err != nil {
		return v, err
	}
	return s.convert(n, v, typ)
}

func (s *state) evalConstant(dot reflect.Value, typ reflect.Type, n parse.Node) (reflect.Value, error) {
	if typ.Kind() == reflect.Interface && typ.NumMethod() == 0 {
		return s.evalValue(dot, n)
	}
	v := reflect.New(typ).Elem()
	num, _ := n.(*parse.NumberNode)
	switch k := typ.Kind(); {
	case k == reflect.Bool:
		if b, ok := n.(*parse.BoolNode); ok {
			v.SetBool(b.True)
			return v, nil
		}
		return v, s.errorf(n, "expected bool; found %s", n)
	case k == reflect.String:
		if str, ok := n.(*parse.StringNode); ok {
			v.SetString(str.Text)
			return v, nil
		}
		return v, s.errorf(n, "expected string; found %s", n)
	case k >= reflect.Int && k <= reflect.Int64:
		if num != nil && num.IsInt {
			v.SetInt(num.Int64)
			return v, nil
		}
		return v, s.errorf(n, "expected integer; found %s", n)
	case k >= reflect.Uint && k <= reflect.Uintptr:
		if num != nil && num.IsUint {
			v.SetUint(num.Uint64)
			return v, nil
		}
		return v, s.errorf(n, "expected unsigned integer; found %s", n)
	case k == reflect.Float32 || k == reflect.Float64:
		if num != nil && num.IsFloat {
			v.SetFloat(num.Float64)
			return v, nil
		}
		return v, s.errorf(n, "expected float; found %s", n)
	case k == reflect.Complex64 || k == reflect.Complex128:
		if num != nil && num.IsComplex {
			v.SetComplex(num.Complex128)
			return v, nil
		}
		return v, s.errorf(n, "expected complex; found %s", n)
	}
	return v, s.errorf(n, "can't handle %s for arg of type %s", n, typ)
}

// convert makes v a value of type typ: no value becomes typ's nil, an interface gives what it
// holds, a pointer what it points to.
func (s *state) convert(n parse.Node, v reflect.Value, typ reflect.Type) (reflect.Value, error) {
	if !v.IsValid() {
		if canBeNil(typ) {
			return reflect.Zero(typ), nil
		}
		return v, s.errorf(n, "invalid value; expected %s", typ)
	}
	if v.Type().AssignableTo(typ) {
		return v, nil
	}
	if v.Kind() == reflect.Interface && !v.IsNil() {
		if v = v.Elem(); v.Type().AssignableTo(typ) {
			return v, nil
		}
	}
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().AssignableTo(typ):
		if v = v.Elem(); !v.IsValid() {
			return v, s.errorf(n, "dereference of nil pointer of type %s", typ)
		}
		return v, nil
	case v.CanAddr() && reflect.PointerTo(v.Type()).AssignableTo(typ):
		return v.Addr(), nil
	}
	return v, s.errorf(n, "wrong type for value; expected %s; got %s", typ, v.Type())
}

func canBeNil(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return true
	}
	return false
}

// callSafely returns a panic of f as an error.
func callSafely(f func() (reflect.Value, error)) (v reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	return f()
}

// indirect follows pointers and interfaces; isNil reports a nil one, which it returns.
func indirect(v reflect.Value) (rv reflect.Value, isNil bool) {
	for ; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; v = v.Elem() {
		if v.IsNil() {
			return v, true
		}
	}
	return v, false
}

// indirectInterface returns what an interface value holds.
func indirectInterface(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Interface {
		return v
	}
	return v.Elem() // no value for a nil interface
}
