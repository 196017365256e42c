#!/bin/bash
# pg.sh - a private PostgreSQL 15 cluster in one directory (data/, socket,
# log/), used by the development stack and by the throwaway test stacks.
# Never touches the system cluster or service; never asks for a password.
#
#   pg.sh init DIR PORT      initdb DIR/data (bootstrap superuser postgres)
#   pg.sh start DIR PORT     start, wait until ready, create database points
#   pg.sh stop DIR [MODE]    stop (MODE smart|fast|immediate, default fast)
#   pg.sh status DIR         exit 0 if running, 3 if stopped, 4 if no cluster
#   pg.sh bindir             print the directory of the server binaries
#
# As root the cluster runs as the postgres system user (initdb refuses root).
set -euo pipefail

PG_DB=points

die() { echo "pg: $*" >&2; exit 1; }

# server binaries: pg_config --bindir if it really holds initdb (libpq-dev's
# pg_config may point at a directory without the server), else
# /usr/lib/postgresql/15/bin, else the newest /usr/lib/postgresql/*/bin
pg_find_bindir() {
	local d
	if [[ -n ${PTS_PG_BINDIR:-} ]]; then
		[[ -x $PTS_PG_BINDIR/initdb ]] || die "PTS_PG_BINDIR=$PTS_PG_BINDIR has no initdb"
		echo "$PTS_PG_BINDIR"
		return
	fi
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return
		fi
	fi
	if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
		echo /usr/lib/postgresql/15/bin
		return
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return
		fi
	done
	die "no PostgreSQL server binaries (initdb) found: run scripts/deps.sh as root"
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# run a command as the cluster owner: postgres when we are root, else ourselves
as_owner() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# DIR becomes the socket directory too: keep it short and free of characters
# that conninfo strings and postgresql.conf would need to quote
pg_check_dir() {
	local dir=$1
	[[ $dir == /* ]] || die "internal: $dir is not absolute"
	[[ $dir =~ ^[A-Za-z0-9/._+@=-]+$ ]] ||
		die "directory $dir has spaces or special characters: move the repository to a plain path"
	((${#dir} + 18 <= 107)) ||
		die "directory $dir is too long for a Unix socket path (max about 89 bytes)"
}

abs_dir() {
	mkdir -p "$1"
	(cd "$1" && pwd -P)
}

# as root: DIR must belong to postgres, and postgres must reach it
pg_prepare_dir() {
	local dir=$1
	if ! is_root; then
		if [[ -e $dir/data && ! -O $dir/data ]]; then
			die "$dir/data belongs to $(stat -c %U "$dir/data"): run as root, or remove $dir"
		fi
		if [[ -O $dir ]]; then
			chmod 0755 "$dir"
		fi
		return
	fi
	getent passwd postgres >/dev/null ||
		die "no postgres system user: install postgresql-15 (scripts/deps.sh)"
	if [[ $(stat -c %U "$dir") != postgres ]]; then
		chown -R postgres: "$dir"
	fi
	chmod 0755 "$dir"
	if ! runuser -u postgres -- test -x "$dir" -a -w "$dir"; then
		die "the postgres user cannot reach $dir (a parent directory is not searchable, e.g. under /root): move the repository elsewhere or chmod o+x its parent directories"
	fi
}

# settings we own, rewritten on every start so DIR and PORT always match
pg_write_conf() {
	local dir=$1 port=$2 f=$1/data/pts.conf
	cat >"$f.tmp" <<-CONF
	# written by scripts/pg.sh: do not edit, rewritten at each start
	listen_addresses = '127.0.0.1'
	port = $port
	unix_socket_directories = '$dir'
	unix_socket_permissions = 0777
	max_connections = 200
	shared_buffers = 256MB
	max_locks_per_transaction = 256
	fsync = on
	synchronous_commit = on
	logging_collector = on
	log_directory = '$dir/log'
	log_filename = 'postgresql-%Y-%m-%d.log'
	log_line_prefix = '%m [%p] %q%u@%d '
	log_timezone = 'UTC'
	timezone = 'UTC'
	CONF
	mv "$f.tmp" "$f"
	if is_root; then
		chown postgres: "$f"
	fi
}

pg_write_hba() {
	local f=$1/data/pg_hba.conf
	cat >"$f" <<-HBA
	# written by scripts/pg.sh: a private development cluster, trust on the
	# Unix socket (a directory of the repository) and on 127.0.0.1 only
	local   all          all                 trust
	host    all          all   127.0.0.1/32  trust
	local   replication  all                 trust
	host    replication  all   127.0.0.1/32  trust
	HBA
	if is_root; then
		chown postgres: "$f"
	fi
}

cmd_init() {
	local dir port bindir
	(($# == 2)) || die "usage: pg.sh init DIR PORT"
	dir=$(abs_dir "$1")
	port=$2
	pg_check_dir "$dir"
	pg_prepare_dir "$dir"
	if [[ -f $dir/data/PG_VERSION ]]; then
		return 0
	fi
	bindir=$(pg_find_bindir)
	as_owner mkdir -p "$dir/log"
	as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 --no-instructions >"$dir/log/initdb.log" 2>&1 ||
		{ cat "$dir/log/initdb.log" >&2; die "initdb failed"; }
	pg_write_hba "$dir"
	echo "include_if_exists = 'pts.conf'" >>"$dir/data/postgresql.conf"
	pg_write_conf "$dir" "$port"
	echo "pg: created cluster in $dir/data (port $port)" >&2
}

pg_is_running() {
	local dir=$1 bindir=$2
	[[ -f $dir/data/PG_VERSION ]] || return 1
	as_owner "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1
}

cmd_start() {
	local dir port bindir i
	(($# == 2)) || die "usage: pg.sh start DIR PORT"
	dir=$(abs_dir "$1")
	port=$2
	pg_check_dir "$dir"
	[[ -f $dir/data/PG_VERSION ]] || die "no cluster in $dir: run pg.sh init first"
	bindir=$(pg_find_bindir)
	pg_prepare_dir "$dir"
	if ! pg_is_running "$dir" "$bindir"; then
		pg_write_conf "$dir" "$port"
		as_owner mkdir -p "$dir/log"
		as_owner "$bindir/pg_ctl" start -D "$dir/data" -w -t 60 \
			-l "$dir/log/startup.log" </dev/null >/dev/null ||
			{ tail -n 20 "$dir/log/startup.log" >&2 || true; die "cluster in $dir did not start"; }
	fi
	for ((i = 0; i < 100; i++)); do
		if "$bindir/pg_isready" -q -h "$dir" -p "$port" -d postgres -U postgres; then
			break
		fi
		sleep 0.1
	done
	"$bindir/pg_isready" -q -h "$dir" -p "$port" -d postgres -U postgres ||
		die "cluster in $dir is not ready on port $port"
	if [[ -z $("$bindir/psql" -X -A -t -h "$dir" -p "$port" -U postgres -d postgres \
		-c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
		"$bindir/createdb" -h "$dir" -p "$port" -U postgres "$PG_DB"
	fi
}

cmd_stop() {
	local dir mode=fast bindir
	(($# >= 1 && $# <= 2)) || die "usage: pg.sh stop DIR [smart|fast|immediate]"
	[[ -d $1 ]] || return 0
	dir=$(cd "$1" && pwd -P)
	if (($# == 2)); then
		mode=$2
	fi
	bindir=$(pg_find_bindir)
	if pg_is_running "$dir" "$bindir"; then
		as_owner "$bindir/pg_ctl" stop -D "$dir/data" -m "$mode" -w -t 60 >/dev/null
	fi
}

cmd_status() {
	local dir bindir
	(($# == 1)) || die "usage: pg.sh status DIR"
	if [[ ! -f $1/data/PG_VERSION ]]; then
		echo "no cluster in $1"
		return 4
	fi
	dir=$(cd "$1" && pwd -P)
	bindir=$(pg_find_bindir)
	if pg_is_running "$dir" "$bindir"; then
		echo "running: $(as_owner "$bindir/pg_ctl" status -D "$dir/data" | head -n 1)"
		return 0
	fi
	echo "stopped: $dir"
	return 3
}

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	init) cmd_init "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	bindir) pg_find_bindir ;;
	*) die "usage: pg.sh init DIR PORT | start DIR PORT | stop DIR [MODE] | status DIR | bindir" ;;
	esac
}

main "$@"
