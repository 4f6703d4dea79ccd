#!/usr/bin/env bash
# sql/migrate against a real MariaDB (the writer of a private stack):
# ordered apply, records with checksums, idempotent, a changed applied file
# refused, a failed file not recorded, bad names refused, env coordinates.
#
# usage: test_migrate.sh BUILD_DIR [PORT_BASE]
set -uo pipefail

BUILD=$(realpath "${1:?usage: test_migrate.sh BUILD_DIR [PORT_BASE]}")
BASE=${2:-31300}
. "$(dirname "$0")/lib.sh"
require_build

WORK=$BUILD/tests/stack-work/migrate
MIGRATE=$REPO/sql/migrate
trap 'stack_in m "$BASE" down >/dev/null 2>&1' EXIT
stack_in m "$BASE" down >/dev/null 2>&1
rm -rf "$WORK"
mkdir -p "$WORK"

if ! out=$(stack_in m "$BASE" up --infra 2>&1); then
    not_ok "stack up (port base $BASE)" "$out"
    finish
fi
ok "stack up (port base $BASE)"

CNF=$WORK/m/mariadb/writer/my.cnf # the administrator over the unix socket
DB=mig_test
admin() { mariadb --defaults-file="$CNF" -N -B "$@"; }
q() { admin "$DB" -e "$1"; }
mig() { "$MIGRATE" --defaults-file "$CNF" --database "$DB" --dir "$DIR" "$@"; }
admin -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"

DIR=$WORK/none
check "a missing migrations dir applies nothing and succeeds" mig
check "... and creates an empty schema_migrations" test "$(q 'SELECT COUNT(*) FROM schema_migrations')" = 0
DIR=$WORK/empty
mkdir -p "$DIR"
check "an empty migrations dir applies nothing and succeeds" mig

DIR=$WORK/migrations
mkdir -p "$DIR"
cat >"$DIR/001_create.sql" <<'EOF'
-- the first migration
CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(10) NULL);
CREATE TABLE applied_log (what VARCHAR(20) NOT NULL);
EOF
cat >"$DIR/002_insert.sql" <<'EOF'
INSERT INTO t (id) VALUES (1);
INSERT INTO applied_log VALUES ('002');
EOF
cat >"$DIR/003_proc.sql" <<'EOF'
DELIMITER //
CREATE PROCEDURE t_count()
BEGIN
  SELECT COUNT(*) FROM t;
END//
EOF
cat >"$DIR/010_column.sql" <<'EOF'
ALTER TABLE t ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'x';
EOF
# 20 > 10 although "0020" sorts before "002_" as text: numeric order.
cat >"$DIR/0020_use_column.sql" <<'EOF'
UPDATE t SET extra = 'y' WHERE id = 1;
INSERT INTO applied_log VALUES ('0020');
EOF

if out=$(mig 2>&1); then ok "five migrations apply" ; else not_ok "five migrations apply" "$out"; fi
check "applied in numeric order (0020 after 010)" test "$(q 'SELECT extra FROM t WHERE id = 1')" = y
check "the procedure of a DELIMITER file exists" test "$(q 'CALL t_count()')" = 1
check "each applied file is recorded with its SHA-256" bash -c '
    for f in "$1"/*.sql; do
        sum=$(sha256sum "$f" | cut -d" " -f1)
        got=$(mariadb --defaults-file="$2" -N -B "$3" -e "SELECT checksum FROM schema_migrations WHERE version = \"$(basename "$f")\"")
        [[ $got == "$sum" ]] || { echo "$(basename "$f"): recorded \"$got\", file $sum"; exit 1; }
    done' _ "$DIR" "$CNF" "$DB"
check "exactly five records" test "$(q 'SELECT COUNT(*) FROM schema_migrations')" = 5

out=$(mig 2>&1)
check "a second run succeeds" test $? -eq 0
check "... says up to date" grep -q "up to date" <<<"$out"
check "... and re-applies nothing" test "$(q 'SELECT COUNT(*) FROM applied_log')" = 2

check "--status lists all as applied" bash -c '[[ $("$@" --status | grep -c "^applied ") == 5 ]]' _ \
    "$MIGRATE" --defaults-file "$CNF" --database "$DB" --dir "$DIR"

# A changed applied file: refused, and nothing pending is applied.
cp "$DIR/002_insert.sql" "$WORK/002.orig"
echo "INSERT INTO applied_log VALUES ('edited');" >>"$DIR/002_insert.sql"
echo "CREATE TABLE t11 (id INT);" >"$DIR/011_new.sql"
out=$(mig 2>&1)
rc=$?
check "a changed applied migration is refused (exit 1)" test $rc -eq 1
check "... naming the file" grep -q "002_insert.sql" <<<"$out"
check "... and the pending 011 is not applied" test -z "$(q "SHOW TABLES LIKE 't11'")"
check "--status shows CHANGED and fails" bash -c \
    'out=$("$@" --status); rc=$?; grep -q "^CHANGED *002_insert.sql" <<<"$out" && grep -q "^pending *011_new.sql" <<<"$out" && [[ $rc == 1 ]]' _ \
    "$MIGRATE" --defaults-file "$CNF" --database "$DB" --dir "$DIR"
cp "$WORK/002.orig" "$DIR/002_insert.sql"
check "restored, the pending 011 applies" mig
check "... t11 exists" test -n "$(q "SHOW TABLES LIKE 't11'")"

# A failing file is not recorded; fixed, it applies.
printf 'CREATE TABLE IF NOT EXISTS t12 (id INT);\nSELEC oops;\n' >"$DIR/012_bad.sql"
check_fails "a failing migration fails the run" mig
check "... and is not recorded" test "$(q "SELECT COUNT(*) FROM schema_migrations WHERE version = '012_bad.sql'")" = 0
printf 'CREATE TABLE IF NOT EXISTS t12 (id INT);\n' >"$DIR/012_bad.sql"
check "fixed, it applies" mig
check "... and is recorded" test "$(q "SELECT COUNT(*) FROM schema_migrations WHERE version = '012_bad.sql'")" = 1

# Names.
echo "SELECT 1;" >"$DIR/012_twin.sql"
check_fails "two files with the same number are refused" mig
rm -f "$DIR/012_twin.sql"
echo "SELECT 1;" >"$DIR/notes.sql"
check_fails "a file not named NNN_name.sql is refused" mig
rm -f "$DIR/notes.sql"

# Connection from the VC_MYSQL_* environment, over TCP. --status only reads,
# so the read-only analyst may ask it (the sink's user may not even read the
# migration log: sql/roles.sql).
envfile=$WORK/m.env
stack_in m "$BASE" env >"$envfile"
check "VC_MYSQL_* coordinates: --status of the repo's migrations, read-only (analyst)" bash -c '
    set -a; . "$1"; set +a
    VC_MYSQL_USER=$VC_MYSQL_ANALYST_USER VC_MYSQL_PASSWORD=$VC_MYSQL_ANALYST_PASSWORD
    out=$("$2" --status --dir "$3/sql/migrations") || exit 1
    ! grep -qv "^applied " <<<"$out"' _ "$envfile" "$MIGRATE" "$REPO"
check_fails "a wrong password fails" bash -c '
    set -a; . "$1"; set +a
    VC_MYSQL_PASSWORD=wrong "$2" --status --dir "$3/sql/migrations"' _ "$envfile" "$MIGRATE" "$REPO"
check_fails "no database given fails" env -u VC_MYSQL_DB "$MIGRATE" --defaults-file "$CNF" --dir "$DIR"

admin -e "DROP DATABASE IF EXISTS $DB"
check "stack down" stack_in m "$BASE" down
finish
