package embedded

import (
	"strings"
)

// The embedded state needs to read SQL in a few narrow ways that SQLite's
// API (as exposed through database/sql) does not offer: expand parameters into
// literals like sqlite3_expanded_sql, find a subscription's tables, and tell
// DDL and DML apart. A small lexer covers all of them; it never has to
// understand more than the subset Corrosion itself accepts.

type tokKind int

const (
	tokWord   tokKind = iota + 1 // keyword or bare identifier
	tokQuoted                    // "ident", `ident` or [ident]
	tokString                    // 'text'
	tokBlob                      // x'0102'
	tokNumber
	tokParam // ?, ?NNN, :name, @name, $name
	tokPunct
)

type token struct {
	kind tokKind
	text string // source text
	pos  int    // byte offset in the source
}

// upper is the keyword form of a bare word.
func (t token) upper() string {
	if t.kind != tokWord {
		return ""
	}
	return strings.ToUpper(t.text)
}

// ident is the identifier a word or quoted token names.
func (t token) ident() string {
	switch t.kind {
	case tokWord:
		return t.text
	case tokQuoted:
		closing := t.text[0]
		if closing == '[' {
			closing = ']'
		}
		// An unterminated quote runs to the end of the source: it has no
		// closing character to drop (SQLite refuses it later).
		inner := t.text[1:]
		if len(inner) > 0 && inner[len(inner)-1] == closing {
			inner = inner[:len(inner)-1]
		}
		if closing == ']' {
			return inner
		}
		q := string(closing)
		return strings.ReplaceAll(inner, q+q, q)
	}
	return ""
}

func (t token) isIdent() bool { return t.kind == tokWord || t.kind == tokQuoted }

// sqlSpace is what SQLite's tokenizer skips as white space; anything else
// (a vertical tab, say) is a token, which SQLite refuses as illegal.
const sqlSpace = " \t\n\r\f"

// lex splits src into tokens, dropping whitespace and comments.
func lex(src string) []token {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case strings.IndexByte(sqlSpace, c) >= 0:
			i++
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			i = skipTo(src, i+2, "\n")
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			i = skipTo(src, i+2, "*/")
		case (c == 'x' || c == 'X') && i+1 < len(src) && src[i+1] == '\'':
			end := quotedEnd(src, i+1, '\'')
			toks = append(toks, token{tokBlob, src[i:end], i})
			i = end
		case c == '\'':
			end := quotedEnd(src, i, '\'')
			toks = append(toks, token{tokString, src[i:end], i})
			i = end
		case c == '"' || c == '`':
			end := quotedEnd(src, i, c)
			toks = append(toks, token{tokQuoted, src[i:end], i})
			i = end
		case c == '[':
			end := skipTo(src, i+1, "]")
			toks = append(toks, token{tokQuoted, src[i:end], i})
			i = end
		case c == '?':
			end := i + 1
			for end < len(src) && isDigit(src[end]) {
				end++
			}
			toks = append(toks, token{tokParam, src[i:end], i})
			i = end
		case (c == ':' || c == '@' || c == '$') && i+1 < len(src) && isWordByte(src[i+1]):
			end := wordEnd(src, i+1)
			toks = append(toks, token{tokParam, src[i:end], i})
			i = end
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			end := numberEnd(src, i)
			toks = append(toks, token{tokNumber, src[i:end], i})
			i = end
		case isWordByte(c):
			end := wordEnd(src, i)
			toks = append(toks, token{tokWord, src[i:end], i})
			i = end
		default:
			end := i + 1
			if end < len(src) && strings.Contains("<=>!|", string(c)) && strings.Contains("=>|", string(src[end])) {
				end++
			}
			toks = append(toks, token{tokPunct, src[i:end], i})
			i = end
		}
	}
	return toks
}

// skipTo returns the offset just past the first occurrence of end at or
// after from, or len(src): SQLite ends an unterminated comment at the end.
func skipTo(src string, from int, end string) int {
	if j := strings.Index(src[from:], end); j >= 0 {
		return from + j + len(end)
	}
	return len(src)
}

// quotedEnd returns the offset past a quoted run starting at i, where a
// doubled quote is an escaped one.
func quotedEnd(src string, i int, q byte) int {
	for j := i + 1; j < len(src); j++ {
		if src[j] != q {
			continue
		}
		if j+1 < len(src) && src[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return len(src)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return c == '_' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}

func wordEnd(src string, i int) int {
	for i < len(src) && (isWordByte(src[i]) || src[i] == '$') {
		i++
	}
	return i
}

func numberEnd(src string, i int) int {
	if strings.HasPrefix(strings.ToLower(src[i:]), "0x") {
		return wordEnd(src, i+2)
	}
	for i < len(src) && (isDigit(src[i]) || src[i] == '.') {
		i++
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	return i
}

// firstKeyword is the statement's leading keyword, upper-cased.
func firstKeyword(toks []token) string {
	if len(toks) == 0 {
		return ""
	}
	return toks[0].upper()
}

// splitStatements splits a script on top-level semicolons. Pieces that hold
// only whitespace and comments are not statements.
func splitStatements(src string) []string {
	var out []string
	keep := func(piece string) {
		if len(lex(piece)) > 0 {
			out = append(out, strings.Trim(piece, sqlSpace))
		}
	}
	start := 0
	for _, t := range lex(src) {
		if t.kind == tokPunct && t.text == ";" {
			keep(src[start:t.pos])
			start = t.pos + 1
		}
	}
	keep(src[start:])
	return out
}

// hasKeyword reports whether a bare keyword appears anywhere in toks.
func hasKeyword(toks []token, kw string) bool {
	for _, t := range toks {
		if t.upper() == kw {
			return true
		}
	}
	return false
}
