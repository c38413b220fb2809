#!/usr/bin/env bash
# Every recipe of docs/cookbook.md, against a daemon serving the cookbook's
# data dir (make_fixture --cookbook; tests/fixture.h):
#  - each ```sql block of the document, in order, is recipe NN (01, 02, …);
#    there must be exactly as many as tests/fixtures/cookbook/NN.expected;
#  - as written, it must run (exit 0) — against the real clock;
#  - read at the fixture's "now" it must answer NN.expected byte for byte,
#    through flowq (table) and through curl (format=table); a recipe with
#    NN.csv.expected must answer that too in csv, through flowq and through
#    the curl line of the cron recipe.
# The clock: the daemon reads the real one, and the fixture's rows are of
# 2024-01-01..08. So the test reads each recipe at COOKBOOK_NOW
# (2024-01-08T12:00:00Z) by writing that instant where the recipe reads the
# clock: ago('D') becomes (ts_ns(NOW) - dur('D')) — what sql.md defines
# ago() to be — and now_ns() becomes ts_ns(NOW). Nothing else is changed,
# and a recipe that reads the clock any other way fails the test.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/query_lib.sh"
test_dir

HERE="$(cd "$(dirname "$0")" && pwd)"
DOC="$HERE/../docs/cookbook.md"
EXPECTED="$HERE/fixtures/cookbook"
NOW=2024-01-08T12:00:00Z # COOKBOOK_NOW in tests/fixture.h

"$MAKE_FIXTURE" --cookbook "$T/fx" || fail "make_fixture --cookbook"
S="$T/fx/flowstore.sock"
start_daemon "$T/fx.log" "$S" --data "$T/fx" --source none

# The recipes: the lines between a line that is exactly ```sql and the next
# line starting with ```. An unterminated or nested block is an error.
n=$(awk -v dir="$T" '
	/^```sql[ \t]*$/ {
		if (inside) { print "line " NR ": a block inside a block" > "/dev/stderr"; exit 1 }
		inside = 1; n++; f = sprintf("%s/%02d.sql", dir, n); printf "" > f; next
	}
	/^```/ { if (inside) { inside = 0; close(f) } next }
	inside { print > f }
	END { if (inside) { print "an unterminated block" > "/dev/stderr"; exit 1 } print n + 0 }
' "$DOC") || fail "cannot extract the recipes of $DOC"
want=$(find "$EXPECTED" -name '[0-9][0-9].expected' | wc -l)
[ "$n" -ge 12 ] || fail "$DOC has $n SQL blocks, want at least 12"
[ "$n" = "$want" ] || fail "$DOC has $n SQL blocks, $EXPECTED has $want NN.expected"
headings=$(grep -c '^## [0-9][0-9]*\. ' "$DOC")
[ "$headings" -ge 12 ] || fail "$DOC has $headings numbered recipes, want at least 12"

same() { # OUT EXPECTED WHAT
	cmp -s "$1" "$2" || fail "$3: the answer is not $(basename "$2"):
$(diff "$2" "$1" | head -40)"
}

for i in $(seq -f %02g "$n"); do
	q="$T/$i.sql"
	[ -s "$EXPECTED/$i.expected" ] || fail "recipe $i: no $EXPECTED/$i.expected"
	[ -n "$(tr -d ' \t\n' <"$q")" ] || fail "recipe $i is empty"

	# As written: it must run now.
	"$FLOWQ" -s "$S" -F csv -f "$q" >"$T/out" 2>"$T/err" ||
		fail "recipe $i fails as written: $(cat "$T/err")
$(cat "$q")"

	# At the fixture's now.
	sed -E -e "s/\\bago\\('([^']*)'\\)/(ts_ns('$NOW') - dur('\\1'))/g" \
		-e "s/\\bnow_ns\\(\\)/ts_ns('$NOW')/g" "$q" >"$T/$i.now.sql"
	! grep -Eiq "\\b(ago|now_ns)[[:space:]]*\\(|'now'" "$T/$i.now.sql" ||
		fail "recipe $i reads the clock in a way this test cannot fix: $(cat "$q")"
	"$FLOWQ" -s "$S" -F table -f "$T/$i.now.sql" >"$T/out" 2>"$T/err" ||
		fail "recipe $i: $(cat "$T/err")"
	same "$T/out" "$EXPECTED/$i.expected" "recipe $i (flowq)"
	curl -sS --unix-socket "$S" --data-binary @"$T/$i.now.sql" \
		'http://flowstore/query?format=table' >"$T/out" || fail "recipe $i: curl exit $?"
	same "$T/out" "$EXPECTED/$i.expected" "recipe $i (curl)"

	if [ -e "$EXPECTED/$i.csv.expected" ]; then
		"$FLOWQ" -s "$S" --format csv -f "$T/$i.now.sql" >"$T/out" ||
			fail "recipe $i: flowq --format csv exit $?"
		same "$T/out" "$EXPECTED/$i.csv.expected" "recipe $i (flowq --format csv)"
		# The cron recipe's curl line, with this socket and file.
		curl -sS --fail-with-body --unix-socket "$S" --data-binary @"$T/$i.now.sql" \
			'http://flowstore/query?format=csv' >"$T/out" || fail "recipe $i: curl exit $?"
		same "$T/out" "$EXPECTED/$i.csv.expected" "recipe $i (curl format=csv)"
	fi
done

stop_daemon "$DAEMON"
echo "e2e_cookbook: ok ($n recipes)"
