// Command argocd-health runs the Argo CD health check of docs/gitops.md on Kubernetes objects the
// way Argo CD runs resource health Lua: gopher-lua, the object as the global `obj`, the script's
// return value a table with `status` and `message`. It reads a kubectl-style List as JSON on
// stdin and prints a JSON array of {"status", "message"}, one per item, in order.
//
// Usage: argocd-health docs/gitops.md < list.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

const (
	begin = "-- BEGIN infra health check"
	end   = "-- END infra health check"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// script returns the lines between the markers, without their common indentation.
func script(doc string) (string, error) {
	start := strings.Index(doc, begin)
	stop := strings.Index(doc, end)
	if start < 0 || stop < start {
		return "", fmt.Errorf("no %q ... %q block", begin, end)
	}
	lineStart := strings.LastIndex(doc[:start], "\n") + 1
	indent := doc[lineStart:start]
	var out []string
	for _, line := range strings.Split(doc[lineStart:stop], "\n") {
		out = append(out, strings.TrimPrefix(line, indent))
	}
	return strings.Join(out, "\n"), nil
}

// toLua converts decoded JSON the way Argo CD hands objects to Lua: objects and arrays become
// tables (arrays 1-indexed), numbers LNumber.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch v := v.(type) {
	case map[string]interface{}:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []interface{}:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}

func run(src string, obj interface{}) (health, error) {
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(src); err != nil {
		return health{}, err
	}
	t, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	return health{Status: t.RawGetString("status").String(), Message: t.RawGetString("message").String()}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health DOC.md < list.json")
		os.Exit(2)
	}
	doc, err := os.ReadFile(os.Args[1])
	check(err)
	src, err := script(string(doc))
	check(err)
	var list struct {
		Items []interface{} `json:"items"`
	}
	check(json.NewDecoder(os.Stdin).Decode(&list))
	out := []health{}
	for _, item := range list.Items {
		h, err := run(src, item)
		check(err)
		out = append(out, h)
	}
	check(json.NewEncoder(os.Stdout).Encode(out))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}
