/*
 * count_fast.c: trivial count queries rewritten into span_count()
 * (count_fast.h).
 *
 * A small tokenizer and a recogniser for exactly one shape of statement;
 * everything else is "not recognised" and the original statement runs. The
 * recogniser only has to be right about what it accepts: the original has
 * already been prepared by SQLite (so it is valid SQL), and the rewrite is
 * prepared too and compared with it (column name, declared type,
 * parameters) before it replaces it.
 *
 * Why the rewrite means the same: each accepted expression is copied,
 * parenthesised, into an argument of span_count in a statement without a
 * FROM clause. If it named a column (of the table or anything else), that
 * prepare fails and the original runs; so an expression that gets through
 * has the same value for every row, and "count the rows whose ts compares
 * so with these values" is what the original computes. Expressions are
 * built only from operators that bind tighter than comparisons (|| -> ->>
 * * / % + - & | << >> ~ and unary +/-), so "ts > e" ends where our e ends.
 */
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "count_fast.h"
#include "sandbox.h"

enum tok {
	T_END, T_BAD, T_WORD, T_QUOTED, T_NUM, T_STR, T_BLOB, T_PARAM, T_LP, T_RP, T_COMMA,
	T_SEMI, T_DOT, T_STAR, T_CMP, T_OP,
};

struct token {
	enum tok t;
	const char *p; /* text as written */
	size_t n;
};

struct lexer {
	const char *p, *end;
	struct token tok; /* the current one */
};

static int is_ident(unsigned char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80 ||
	       (!first && ((c >= '0' && c <= '9') || c == '$'));
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Past a quoted run starting at p (the quote char q, doubled to escape);
 * NULL when unterminated. */
static const char *skip_quoted(const char *p, const char *end, char q)
{
	for (p++; p < end; p++) {
		if (*p != q)
			continue;
		if (p + 1 < end && p[1] == q)
			p++;
		else
			return p + 1;
	}
	return NULL;
}

static const char *skip_number(const char *p, const char *end)
{
	if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
		while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
				   (*p >= 'A' && *p <= 'F')))
			p++;
		return p;
	}
	while (p < end && is_digit(*p))
		p++;
	if (p < end && *p == '.')
		for (p++; p < end && is_digit(*p); p++)
			;
	if (p < end && (*p == 'e' || *p == 'E')) {
		const char *q = p + 1;

		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q < end && is_digit(*q)) {
			for (p = q; p < end && is_digit(*p); p++)
				;
		}
	}
	return p;
}

/* The token at lx->p into lx->tok; lx->p after it. */
static void next(struct lexer *lx)
{
	const char *p = sandbox_skip_blank(lx->p, lx->end), *end = lx->end, *q = NULL;
	struct token *t = &lx->tok;

	t->p = p;
	t->t = T_BAD;
	if (p >= end) {
		t->t = T_END;
		t->n = 0;
		lx->p = p;
		return;
	}
	switch (*p) {
	case '\'':
		q = skip_quoted(p, end, '\'');
		t->t = T_STR;
		break;
	case '"':
		q = skip_quoted(p, end, '"');
		t->t = T_QUOTED;
		break;
	case '`':
		q = skip_quoted(p, end, '`');
		t->t = T_QUOTED;
		break;
	case '[':
		q = memchr(p, ']', (size_t)(end - p));
		q = q ? q + 1 : NULL;
		t->t = T_QUOTED;
		break;
	case '(': q = p + 1; t->t = T_LP; break;
	case ')': q = p + 1; t->t = T_RP; break;
	case ',': q = p + 1; t->t = T_COMMA; break;
	case ';': q = p + 1; t->t = T_SEMI; break;
	case '*': q = p + 1; t->t = T_STAR; break;
	case '?':
		for (q = p + 1; q < end && is_digit(*q); q++)
			;
		t->t = T_PARAM;
		break;
	case ':': case '@': case '$':
		for (q = p + 1; q < end && is_ident((unsigned char)*q, 0); q++)
			;
		t->t = q > p + 1 ? T_PARAM : T_BAD;
		break;
	case '<':
		q = p + 1 + (p + 1 < end && (p[1] == '=' || p[1] == '>' || p[1] == '<'));
		t->t = q == p + 2 && p[1] != '=' ? (p[1] == '<' ? T_OP : T_BAD) : T_CMP;
		break;
	case '>':
		q = p + 1 + (p + 1 < end && (p[1] == '=' || p[1] == '>'));
		t->t = q == p + 2 && p[1] == '>' ? T_OP : T_CMP;
		break;
	case '=':
		q = p + 1 + (p + 1 < end && p[1] == '=');
		t->t = T_CMP;
		break;
	case '!': /* != is a comparison we do not take */
		q = p + 1;
		break;
	case '|':
		q = p + 1 + (p + 1 < end && p[1] == '|');
		t->t = T_OP;
		break;
	case '-':
		q = p + 1;
		if (q < end && *q == '>')
			q += 1 + (q + 1 < end && q[1] == '>');
		t->t = T_OP;
		break;
	case '+': case '/': case '%': case '&': case '~':
		q = p + 1;
		t->t = T_OP;
		break;
	case '.':
		if (p + 1 < end && is_digit(p[1])) {
			q = skip_number(p, end);
			t->t = T_NUM;
		} else {
			q = p + 1;
			t->t = T_DOT;
		}
		break;
	default:
		if (is_digit(*p)) {
			q = skip_number(p, end);
			t->t = q < end && is_ident((unsigned char)*q, 0) ? T_BAD : T_NUM;
		} else if ((*p == 'x' || *p == 'X') && p + 1 < end && p[1] == '\'') {
			q = skip_quoted(p + 1, end, '\'');
			t->t = T_BLOB;
		} else if (is_ident((unsigned char)*p, 1)) {
			for (q = p + 1; q < end && is_ident((unsigned char)*q, 0); q++)
				;
			t->t = T_WORD;
		}
	}
	if (!q) {
		t->t = T_BAD;
		q = end;
	}
	t->n = (size_t)(q - p);
	lx->p = q;
}

static int word_is(const struct token *t, const char *w)
{
	return t->t == T_WORD && strlen(w) == t->n && strncasecmp(t->p, w, t->n) == 0;
}

/* An identifier's name (unquoted, "..." `...` [...]) equals name, ignoring
 * case as SQLite does. Quoted names with doubled quotes never match ours. */
static int name_is(const struct token *t, const char *name)
{
	size_t len = strlen(name);

	if (t->t == T_WORD)
		return len == t->n && strncasecmp(t->p, name, len) == 0;
	if (t->t == T_QUOTED)
		return len == t->n - 2 && strncasecmp(t->p + 1, name, len) == 0;
	return 0;
}

static int is_name(const struct token *t)
{
	return t->t == T_WORD || t->t == T_QUOTED;
}

/* Keywords that may never start or appear in an accepted expression, even
 * before a '(' (CAST( ... ), EXISTS( ... ), ...). */
static int reserved(const struct token *t)
{
	static const char *const words[] = {
		"AND", "OR", "NOT", "IS", "IN", "LIKE", "GLOB", "MATCH", "REGEXP", "BETWEEN",
		"ESCAPE", "COLLATE", "CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "EXISTS",
		"SELECT", "VALUES", "DISTINCT", "ALL", "FILTER", "OVER", "RAISE", "ISNULL",
		"NOTNULL", "FROM", "WHERE", "AS",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (word_is(t, words[i]))
			return 1;
	return 0;
}

static int constant_word(const struct token *t)
{
	return word_is(t, "NULL") || word_is(t, "TRUE") || word_is(t, "FALSE") ||
	       word_is(t, "CURRENT_TIME") || word_is(t, "CURRENT_DATE") ||
	       word_is(t, "CURRENT_TIMESTAMP");
}

/*
 * A constant expression starting at the current token: literals, parameters,
 * function calls, parentheses and the operators that bind tighter than a
 * comparison. Stops (at depth 0) before AND, a comparison, ';' or the end;
 * *start and *len give its text. 0 if it is not one we accept.
 */
static int expr(struct lexer *lx, const char **start, size_t *len)
{
	int depth = 0, operand = 0; /* operand: the last token ended an operand */
	const char *last_end = lx->tok.p;

	*start = lx->tok.p;
	for (;;) {
		struct token *t = &lx->tok;

		if (depth == 0 && (t->t == T_END || t->t == T_SEMI || t->t == T_CMP ||
				   word_is(t, "AND")))
			break;
		switch (t->t) {
		case T_NUM: case T_STR: case T_BLOB: case T_PARAM:
			if (operand)
				return 0;
			operand = 1;
			break;
		case T_WORD: {
			struct lexer peek = *lx;

			if (operand || reserved(t))
				return 0;
			if (constant_word(t)) {
				operand = 1;
				break;
			}
			next(&peek);
			if (peek.tok.t != T_LP)
				return 0; /* a column or keyword: not ours */
			/* SQLite calls these again for every row: "ts > random()"
			 * is no constant window (ago() and now_ns() are: they
			 * read the clock once per statement) */
			if (word_is(t, "random") || word_is(t, "randomblob"))
				return 0;
			break; /* a function's name; '(' follows */
		}
		case T_LP:
			depth++;
			operand = 0;
			break;
		case T_RP:
			if (depth == 0)
				return 0;
			depth--;
			operand = 1;
			break;
		case T_COMMA:
			if (depth == 0)
				return 0;
			operand = 0;
			break;
		case T_STAR: /* multiplication only: f(*) is an aggregate */
			if (!operand)
				return 0;
			operand = 0;
			break;
		case T_OP:
			operand = 0;
			break;
		default: /* comparisons inside parentheses, '.', quoted names, ... */
			return 0;
		}
		last_end = t->p + t->n;
		next(lx);
	}
	*len = (size_t)(last_end - *start);
	return *len > 0 && operand && depth == 0;
}

/* ts, "ts", t.ts, "t"."ts" with t the table or its alias. Consumes it. */
static int ts_ref(struct lexer *lx, const char *table, const struct token *alias)
{
	struct lexer peek = *lx;

	if (!is_name(&lx->tok))
		return 0;
	next(&peek);
	if (peek.tok.t == T_DOT) {
		const struct token *q = &lx->tok;
		int ok = name_is(q, table) || (alias && alias->n == q->n && q->t == alias->t &&
					       strncasecmp(alias->p, q->p, q->n) == 0);

		next(&peek);
		if (!ok || !name_is(&peek.tok, "ts"))
			return 0;
		next(&peek);
		*lx = peek;
		return 1;
	}
	if (!name_is(&lx->tok, "ts"))
		return 0;
	*lx = peek;
	return 1;
}

/* Our operator for a comparison token, flipped when ts is on the right. */
static const char *cmp_op(const struct token *t, int flip)
{
	if (t->n == 1 && t->p[0] == '=')
		return "=";
	if (t->n == 2 && t->p[0] == '=' && t->p[1] == '=')
		return "=";
	if (t->n == 1)
		return (t->p[0] == '<') != flip ? "<" : ">";
	if (t->n == 2 && t->p[1] == '=' && (t->p[0] == '<' || t->p[0] == '>'))
		return (t->p[0] == '<') != flip ? "<=" : ">=";
	return NULL; /* <> */
}

static void arg(sqlite3_str *out, const char *op, const char *e, size_t n)
{
	sqlite3_str_appendf(out, ", '%s', (%.*s)", op, (int)n, e);
}

/* One "ts OP e", "e OP ts" or "ts BETWEEN e AND e" into out. */
static int condition(struct lexer *lx, const char *table, const struct token *alias,
		     sqlite3_str *out)
{
	const char *e, *op;
	size_t n;

	if (ts_ref(lx, table, alias)) {
		if (word_is(&lx->tok, "BETWEEN")) {
			next(lx);
			if (!expr(lx, &e, &n) || !word_is(&lx->tok, "AND"))
				return 0;
			arg(out, ">=", e, n);
			next(lx);
			if (!expr(lx, &e, &n))
				return 0;
			arg(out, "<=", e, n);
			return 1;
		}
		if (lx->tok.t != T_CMP || !(op = cmp_op(&lx->tok, 0)))
			return 0;
		next(lx);
		if (!expr(lx, &e, &n))
			return 0;
		arg(out, op, e, n);
		return 1;
	}
	if (!expr(lx, &e, &n) || lx->tok.t != T_CMP || !(op = cmp_op(&lx->tok, 1)))
		return 0;
	next(lx);
	if (!ts_ref(lx, table, alias))
		return 0;
	arg(out, op, e, n);
	return 1;
}

static const char *span_table(const struct token *t)
{
	static const char *const tables[] = { "flows", "connections", "tcp_states" };

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (name_is(t, tables[i]))
			return tables[i];
	return NULL;
}

/* The alias after count(...) or the table: [AS] name, or none. */
static int alias_of(struct lexer *lx, const char *stop, struct token *alias)
{
	int as = word_is(&lx->tok, "AS");

	alias->t = T_END;
	if (as)
		next(lx);
	if (!as && (word_is(&lx->tok, stop) || lx->tok.t != T_WORD) && lx->tok.t != T_QUOTED)
		return 1; /* none */
	if (!is_name(&lx->tok) && !(as && lx->tok.t == T_STR))
		return 0;
	if (lx->tok.t == T_WORD && reserved(&lx->tok))
		return 0;
	*alias = lx->tok;
	next(lx);
	return 1;
}

char *count_fast_sql(const char *sql, size_t len)
{
	struct lexer lx = { sql, sql + len, { T_END, sql, 0 } };
	struct token alias, talias;
	const char *table;
	sqlite3_str *out;
	int ok = 1;

	next(&lx);
	if (!word_is(&lx.tok, "SELECT"))
		return NULL;
	next(&lx);
	if (!word_is(&lx.tok, "count"))
		return NULL;
	next(&lx);
	if (lx.tok.t != T_LP)
		return NULL;
	next(&lx);
	if (!(lx.tok.t == T_STAR || (lx.tok.t == T_NUM && lx.tok.n == 1 && lx.tok.p[0] == '1')))
		return NULL;
	next(&lx);
	if (lx.tok.t != T_RP)
		return NULL;
	next(&lx);
	if (!alias_of(&lx, "FROM", &alias) || !word_is(&lx.tok, "FROM"))
		return NULL;
	next(&lx);
	if (!(table = span_table(&lx.tok)))
		return NULL;
	next(&lx);
	if (lx.tok.t == T_DOT) /* schema.table: not ours */
		return NULL;
	if (!alias_of(&lx, "WHERE", &talias))
		return NULL;
	out = sqlite3_str_new(NULL);
	sqlite3_str_appendf(out, "SELECT span_count('%s'", table);
	if (word_is(&lx.tok, "WHERE")) {
		do {
			next(&lx);
			ok = condition(&lx, table, talias.t == T_END ? NULL : &talias, out);
		} while (ok && word_is(&lx.tok, "AND"));
	}
	if (ok && lx.tok.t == T_SEMI)
		next(&lx);
	if (!ok || lx.tok.t != T_END) {
		sqlite3_free(sqlite3_str_finish(out));
		return NULL;
	}
	sqlite3_str_appendall(out, ")");
	return sqlite3_str_finish(out);
}

static int same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

sqlite3_stmt *count_fast_prepare(sqlite3 *db, const char *sql, size_t len, sqlite3_stmt *orig)
{
	char *body = count_fast_sql(sql, len), *full;
	const char *name = sqlite3_column_count(orig) == 1 ? sqlite3_column_name(orig, 0) : NULL;
	sqlite3_stmt *st = NULL;
	int ok;

	if (!body || !name) {
		sqlite3_free(body);
		return NULL;
	}
	full = sqlite3_mprintf("%s AS \"%w\"", body, name);
	sqlite3_free(body);
	if (!full)
		return NULL;
	if (sqlite3_prepare_v3(db, full, -1, 0, &st, NULL) != SQLITE_OK || !st) {
		sqlite3_free(full);
		sqlite3_finalize(st);
		return NULL;
	}
	sqlite3_free(full);
	ok = sqlite3_column_count(st) == 1 && same_text(sqlite3_column_name(st, 0), name) &&
	     same_text(sqlite3_column_decltype(st, 0), sqlite3_column_decltype(orig, 0)) &&
	     sqlite3_stmt_readonly(st) &&
	     sqlite3_bind_parameter_count(st) == sqlite3_bind_parameter_count(orig);
	for (int i = 1; ok && i <= sqlite3_bind_parameter_count(st); i++)
		ok = same_text(sqlite3_bind_parameter_name(st, i),
			       sqlite3_bind_parameter_name(orig, i));
	if (!ok) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}
