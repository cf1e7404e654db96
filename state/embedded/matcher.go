package embedded

import (
	"errors"
	"fmt"
	"strings"
)

// tableRef is one table of a subscription's FROM clause.
type tableRef struct {
	name  string // as declared in the schema
	alias string // how the query refers to it
}

// matchQuery is a subscription query prepared for change matching: the
// primary-key columns of every table are prepended to the result, so that a
// row keeps its identity (and its rowid) while its other values change.
type matchQuery struct {
	tables []tableRef
	sql    string // the query with pk columns in front
	npk    int    // how many leading columns are pk columns
}

// pkLookup returns a table's primary-key columns in key order, or an error
// when the table is not in the schema.
type pkLookup func(table string) ([]string, error)

// planSubscription checks that src is the kind of query Corrosion's matcher
// accepts (one SELECT over schema tables with optional JOINs and WHERE) and
// rewrites it for matching.
func planSubscription(src string, pks pkLookup) (*matchQuery, error) {
	toks := lex(src)
	if firstKeyword(toks) != "SELECT" {
		return nil, errors.New("unsupported statement")
	}
	if err := checkNoInTable(toks); err != nil {
		return nil, err
	}
	tables, err := fromTables(toks)
	if err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return nil, errors.New("at least 1 table is required in FROM / JOIN clause")
	}
	var cols []string
	for _, t := range tables {
		keys, err := pks(t.name)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			cols = append(cols, quoteIdent(t.alias)+"."+quoteIdent(k))
		}
	}
	insertAt := toks[0].pos + len(toks[0].text)
	if len(toks) > 1 && (toks[1].upper() == "DISTINCT" || toks[1].upper() == "ALL") {
		insertAt = toks[1].pos + len(toks[1].text)
	}
	rewritten := src[:insertAt] + " " + strings.Join(cols, ", ") + "," + src[insertAt:]
	return &matchQuery{tables: tables, sql: rewritten, npk: len(cols)}, nil
}

// checkNoInTable refuses `x IN table`, which Corrosion's matcher rejects:
// the table would escape change matching.
func checkNoInTable(toks []token) error {
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].upper() == "IN" && toks[i+1].isIdent() {
			return fmt.Errorf("unsupported: `IN %s` (IN with a table name)", toks[i+1].ident())
		}
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// clauseEnd lists keywords that end a FROM clause at the top level.
var clauseEnd = map[string]bool{
	"WHERE": true, "GROUP": true, "ORDER": true, "LIMIT": true, "HAVING": true,
	"WINDOW": true, "UNION": true, "EXCEPT": true, "INTERSECT": true,
}

// joinWords may stand between two table references.
var joinWords = map[string]bool{
	"JOIN": true, "NATURAL": true, "LEFT": true, "RIGHT": true, "FULL": true,
	"OUTER": true, "INNER": true, "CROSS": true,
}

// fromTables reads the table references of the top-level FROM clause.
// Subqueries and table-valued functions are skipped, as Corrosion does.
func fromTables(toks []token) ([]tableRef, error) {
	i := topLevelKeyword(toks, "FROM")
	if i < 0 {
		return nil, nil
	}
	var refs []tableRef
	for i++; i < len(toks); {
		t := toks[i]
		switch {
		case t.kind == tokPunct && t.text == ",", joinWords[t.upper()]:
			i++
		case t.kind == tokPunct && t.text == "(":
			i = skipParens(toks, i)
			i = skipAlias(toks, i)
		case t.upper() == "ON":
			i = skipCondition(toks, i+1)
		case t.upper() == "USING":
			i = skipParens(toks, i+1)
		case clauseEnd[t.upper()], t.kind == tokPunct && t.text == ";":
			return refs, nil
		case t.isIdent():
			ref, next := readTableRef(toks, i)
			if next < len(toks) && toks[next].text == "(" { // table-valued function
				i = skipAlias(toks, skipParens(toks, next))
				continue
			}
			refs = append(refs, ref)
			i = next
		default:
			return nil, fmt.Errorf("unsupported FROM clause near %q", t.text)
		}
	}
	return refs, nil
}

// topLevelKeyword finds kw outside any parentheses.
func topLevelKeyword(toks []token, kw string) int {
	depth := 0
	for i, t := range toks {
		switch {
		case t.text == "(":
			depth++
		case t.text == ")":
			depth--
		case depth == 0 && t.upper() == kw:
			return i
		}
	}
	return -1
}

// readTableRef reads `[schema.]name [[AS] alias]`.
func readTableRef(toks []token, i int) (tableRef, int) {
	name := toks[i].ident()
	i++
	if i+1 < len(toks) && toks[i].text == "." && toks[i+1].isIdent() {
		name = toks[i+1].ident() // schema-qualified: keep the table name
		i += 2
	}
	if i < len(toks) && toks[i].text == "(" {
		return tableRef{}, i
	}
	ref := tableRef{name: name, alias: name}
	if i < len(toks) && toks[i].upper() == "AS" {
		i++
	}
	if i < len(toks) && toks[i].isIdent() && !isReserved(toks[i]) {
		ref.alias = toks[i].ident()
		i++
	}
	return ref, i
}

func isReserved(t token) bool {
	u := t.upper()
	return clauseEnd[u] || joinWords[u] || u == "ON" || u == "USING" || u == "INDEXED" || u == "NOT"
}

func skipAlias(toks []token, i int) int {
	if i < len(toks) && toks[i].upper() == "AS" {
		i++
	}
	if i < len(toks) && toks[i].isIdent() && !isReserved(toks[i]) {
		i++
	}
	return i
}

// skipParens returns the index past the parenthesised group starting at i.
func skipParens(toks []token, i int) int {
	depth := 0
	for ; i < len(toks); i++ {
		switch toks[i].text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return i
}

// skipCondition skips an ON expression up to the next join or clause.
func skipCondition(toks []token, i int) int {
	for i < len(toks) {
		t := toks[i]
		switch {
		case t.text == "(":
			i = skipParens(toks, i)
		case t.text == ",", joinWords[t.upper()], clauseEnd[t.upper()]:
			return i
		default:
			i++
		}
	}
	return i
}
