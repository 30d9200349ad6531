package resourcegraph

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Row is one row of a table or a result: column name to value. Values are
// what encoding/json decodes into an any (string, float64, bool, nil,
// map[string]any, []any), plus int64 for counts and whole-number literals.
type Row map[string]any

// Run evaluates q over rows, the table q names, and returns the result rows
// in order. It does not change rows.
func (q *Query) Run(rows []Row) []Row {
	out := rows
	for _, s := range q.stages {
		out = runStage(s, out)
	}
	return out
}

func runStage(s stage, rows []Row) []Row {
	switch s := s.(type) {
	case whereStage:
		var out []Row
		for _, r := range rows {
			if truthy(eval(s.pred, r)) {
				out = append(out, r)
			}
		}
		return out
	case projectStage:
		out := make([]Row, len(rows))
		for i, r := range rows {
			nr := make(Row, len(s.items))
			for _, it := range s.items {
				nr[it.name] = eval(it.x, r)
			}
			out[i] = nr
		}
		return out
	case projectAwayStage:
		out := make([]Row, len(rows))
		for i, r := range rows {
			nr := make(Row, len(r))
			for k, v := range r {
				if !slices.Contains(s.names, k) {
					nr[k] = v
				}
			}
			out[i] = nr
		}
		return out
	case extendStage:
		out := make([]Row, len(rows))
		for i, r := range rows {
			nr := make(Row, len(r)+len(s.items))
			for k, v := range r {
				nr[k] = v
			}
			// Each item sees the columns the ones before it added, as in Kusto.
			for _, it := range s.items {
				nr[it.name] = eval(it.x, nr)
			}
			out[i] = nr
		}
		return out
	case orderStage:
		return sortRows(s.keys, rows)
	case limitStage:
		if len(rows) > s.n {
			return rows[:s.n]
		}
		return rows
	case topSt:
		return runStage(s.limit, runStage(s.order, rows))
	case countStage:
		return []Row{{"Count": int64(len(rows))}}
	case summarizeStage:
		return summarize(s, rows)
	case distinctStage:
		var out []Row
		seen := map[string]bool{}
		for _, r := range rows {
			nr := make(Row, len(s.items))
			for _, it := range s.items {
				nr[it.name] = eval(it.x, r)
			}
			k := groupKey(nr, s.items)
			if !seen[k] {
				seen[k] = true
				out = append(out, nr)
			}
		}
		return out
	}
	return rows
}

func sortRows(keys []sortKey, rows []Row) []Row {
	type keyed struct {
		r    Row
		vals []any
	}
	ks := make([]keyed, len(rows))
	for i, r := range rows {
		ks[i] = keyed{r: r, vals: make([]any, len(keys))}
		for j, k := range keys {
			ks[i].vals[j] = eval(k.x, r)
		}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		for j, k := range keys {
			c := compareValues(a.vals[j], b.vals[j])
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	out := make([]Row, len(ks))
	for i, k := range ks {
		out[i] = k.r
	}
	return out
}

func summarize(s summarizeStage, rows []Row) []Row {
	type group struct {
		row    Row
		counts []int64
		sets   []map[string]bool
	}
	var order []string
	groups := map[string]*group{}
	for _, r := range rows {
		by := make(Row, len(s.by))
		for _, b := range s.by {
			by[b.name] = eval(b.x, r)
		}
		k := groupKey(by, s.by)
		g := groups[k]
		if g == nil {
			g = &group{row: by, counts: make([]int64, len(s.aggs)), sets: make([]map[string]bool, len(s.aggs))}
			groups[k] = g
			order = append(order, k)
		}
		for i, a := range s.aggs {
			switch a.fn {
			case "count":
				g.counts[i]++
			case "countif":
				if truthy(eval(a.arg, r)) {
					g.counts[i]++
				}
			case "dcount":
				v := eval(a.arg, r)
				if v == nil {
					continue
				}
				if g.sets[i] == nil {
					g.sets[i] = map[string]bool{}
				}
				g.sets[i][canonical(v)] = true
			}
		}
	}
	// Without a by clause, summarize gives one row even for no input.
	if len(s.by) == 0 && len(order) == 0 {
		g := &group{row: Row{}, counts: make([]int64, len(s.aggs)), sets: make([]map[string]bool, len(s.aggs))}
		groups[""] = g
		order = append(order, "")
	}
	out := make([]Row, 0, len(order))
	for _, k := range order {
		g := groups[k]
		for i, a := range s.aggs {
			if a.fn == "dcount" {
				g.row[a.name] = int64(len(g.sets[i]))
			} else {
				g.row[a.name] = g.counts[i]
			}
		}
		out = append(out, g.row)
	}
	return out
}

func groupKey(r Row, items []namedExpr) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(canonical(r[it.name]))
		b.WriteByte(0)
	}
	return b.String()
}

// canonical is a value's JSON, for grouping and distinct.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func eval(e Expr, r Row) any {
	switch e := e.(type) {
	case *literal:
		return e.v
	case *columnRef:
		return r[e.name]
	case *member:
		m, ok := eval(e.x, r).(map[string]any)
		if !ok {
			return nil
		}
		return m[e.name]
	case *index:
		x := eval(e.x, r)
		i := eval(e.i, r)
		switch x := x.(type) {
		case map[string]any:
			if s, ok := i.(string); ok {
				return x[s]
			}
		case []any:
			if n, ok := toInt(i); ok {
				if n < 0 {
					n += int64(len(x))
				}
				if n >= 0 && n < int64(len(x)) {
					return x[n]
				}
			}
		}
		return nil
	case *binary:
		return evalBinary(e, r)
	case *inList:
		x := eval(e.x, r)
		found := false
		for _, it := range e.list {
			v := eval(it, r)
			if e.fold && strings.EqualFold(toString(x), toString(v)) || !e.fold && equal(x, v) {
				found = true
				break
			}
		}
		if x == nil {
			return false
		}
		return found != e.neg
	case *call:
		return evalCall(e, r)
	}
	return nil
}

func evalBinary(e *binary, r Row) any {
	switch e.op {
	case "and":
		return truthy(eval(e.l, r)) && truthy(eval(e.r, r))
	case "or":
		return truthy(eval(e.l, r)) || truthy(eval(e.r, r))
	}
	l, rv := eval(e.l, r), eval(e.r, r)
	switch e.op {
	case "==":
		return l != nil && rv != nil && equal(l, rv)
	case "!=":
		return l != nil && rv != nil && !equal(l, rv)
	case "=~":
		return l != nil && rv != nil && strings.EqualFold(toString(l), toString(rv))
	case "!~":
		return l != nil && rv != nil && !strings.EqualFold(toString(l), toString(rv))
	case "<", "<=", ">", ">=":
		if l == nil || rv == nil {
			return false
		}
		c := compareValues(l, rv)
		switch e.op {
		case "<":
			return c < 0
		case "<=":
			return c <= 0
		case ">":
			return c > 0
		}
		return c >= 0
	}
	neg := strings.HasPrefix(e.op, "!")
	op := strings.TrimPrefix(e.op, "!")
	ls, rs := toString(l), toString(rv)
	if cs, ok := strings.CutSuffix(op, "_cs"); ok {
		op = cs
	} else {
		ls, rs = strings.ToLower(ls), strings.ToLower(rs)
	}
	var ok bool
	switch op {
	case "contains":
		ok = strings.Contains(ls, rs)
	case "startswith":
		ok = strings.HasPrefix(ls, rs)
	case "endswith":
		ok = strings.HasSuffix(ls, rs)
	case "has":
		ok = hasTerm(ls, rs)
	}
	return ok != neg
}

// hasTerm reports whether term occurs in s as a whole term: bounded by the
// start, the end or characters that are not letters or digits, as Kusto's
// has matches.
func hasTerm(s, term string) bool {
	if term == "" {
		return true
	}
	for i := 0; i+len(term) <= len(s); {
		j := strings.Index(s[i:], term)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(term)
		if (j == 0 || !isAlnum(s[j-1])) && (end == len(s) || !isAlnum(s[end])) {
			return true
		}
		i = j + 1
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= 0x80 || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))
}

func evalCall(e *call, r Row) any {
	arg := func(i int) any { return eval(e.args[i], r) }
	switch e.name {
	case "tostring":
		v := arg(0)
		if v == nil {
			return ""
		}
		return toString(v)
	case "tolower":
		return strings.ToLower(toString(arg(0)))
	case "toupper":
		return strings.ToUpper(toString(arg(0)))
	case "strlen":
		return int64(len([]rune(toString(arg(0)))))
	case "isempty":
		return isEmpty(arg(0))
	case "isnotempty":
		return !isEmpty(arg(0))
	case "isnull":
		return arg(0) == nil
	case "isnotnull":
		return arg(0) != nil
	case "not":
		return !truthy(arg(0))
	case "strcat":
		var b strings.Builder
		for i := range e.args {
			b.WriteString(toString(arg(i)))
		}
		return b.String()
	case "iff", "iif":
		if truthy(arg(0)) {
			return arg(1)
		}
		return arg(2)
	case "coalesce":
		for i := range e.args {
			if v := arg(i); !isEmpty(v) {
				return v
			}
		}
		return nil
	case "toint", "tolong":
		if n, ok := toInt(arg(0)); ok {
			return n
		}
		return nil
	case "tobool":
		switch v := arg(0).(type) {
		case bool:
			return v
		case string:
			if b, err := strconv.ParseBool(v); err == nil {
				return b
			}
		case int64:
			return v != 0
		case float64:
			return v != 0
		}
		return nil
	case "array_length":
		if a, ok := arg(0).([]any); ok {
			return int64(len(a))
		}
		return nil
	}
	return nil
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	}
	return false
}

func truthy(v any) bool {
	b, ok := v.(bool)
	return ok && b
}

// toString renders a value as Kusto's tostring does: strings as they are,
// numbers in their shortest form, objects and arrays as compact JSON.
func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return canonical(v)
}

func toNumber(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	return 0, false
}

func toInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, false
		}
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}

// equal is Kusto's == : numbers by value, everything else by its string
// form, case-sensitively.
func equal(a, b any) bool {
	if isNumber(a) && isNumber(b) {
		x, _ := toNumber(a)
		y, _ := toNumber(b)
		return x == y
	}
	if ab, ok := a.(bool); ok {
		if bb, ok := b.(bool); ok {
			return ab == bb
		}
	}
	return toString(a) == toString(b)
}

// compareValues orders values for order by and the comparisons: nulls
// first, then numbers by value, then everything else by its string form.
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	if isNumber(a) && isNumber(b) {
		x, _ := toNumber(a)
		y, _ := toNumber(b)
		return cmp.Compare(x, y)
	}
	if isNumber(a) != isNumber(b) {
		// A number against a numeric string compares as numbers.
		x, okx := toNumber(a)
		y, oky := toNumber(b)
		if okx && oky {
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(toString(a), toString(b))
}
