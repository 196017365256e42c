#!/bin/bash
# devstack.sh - the development stack of operations.md §2 under var/: private
# PostgreSQL, schema, development CA, demo partners acme and globex, pointsd.
# Reuses whatever exists; never deletes data (remove var/ to start over).
#
#   devstack.sh run     set up, then pointsd in the foreground (make run)
#   devstack.sh up      set up, then pointsd in the background (make up)
#   devstack.sh down    stop pointsd and the cluster (make down)
#   devstack.sh setup DIR PGPORT TLSPORT METRICSPORT BINDIR
#                       the same set-up in any directory (scripts/test.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"

VAR=$ROOT/var
DEV_PG_PORT=54329
DEV_TLS_PORT=8443
DEV_METRICS_PORT=9443
PIDFILE=$VAR/run/pointsd.pid
LOGFILE=$VAR/log/pointsd.log

# demo partners: id, name, issue price, redeem price, clearing fee
# (the rate cards of settlement.md §4)
DEMO_PARTNERS=(
	"acme|Acme Stores|0.010000|0.008000|0.001000"
	"globex|Globex Corporation|0.012000|0.009000|0.001000"
)

die() { echo "devstack: $*" >&2; exit 1; }
say() { echo "devstack: $*" >&2; }

# set by stack_setup
S_DIR='' S_ADMIN='' S_BIN=''

# pointsctl as the database superuser; the one place that says how --db is passed
ctl() {
	"$S_BIN/pointsctl" --db "$S_ADMIN" "$@"
}

register_partner() { # id|name|issue|redeem|fee
	local id name ip rp fee pdir
	IFS='|' read -r id name ip rp fee <<<"$1"
	if ctl partner show "$id" >/dev/null 2>&1; then
		return 0
	fi
	pdir=$S_DIR/certs/partners/$id
	if ! { ctl partner add "$id" --name "$name" --cert "$pdir/client.crt" >/dev/null &&
		ctl key add "$id" --kid "$(cat "$pdir/signing.kid")" --public-key "$pdir/signing.pub" >/dev/null &&
		ctl rate set "$id" --issue-price "$ip" --redeem-price "$rp" --clearing-fee "$fee" >/dev/null &&
		ctl partner activate "$id" >/dev/null; }; then
		die "registering partner $id failed half-way: fix it with pointsctl, or remove $S_DIR and start over"
	fi
	say "registered partner $id ($name)"
}

write_conf() { # DIR PGPORT TLSPORT METRICSPORT
	local dir=$1 conf=$1/pointsd.conf
	[[ ! -f $conf ]] || return 0
	cat >"$conf.tmp" <<-CONF
	# pointsd configuration (key = value), written by scripts/devstack.sh;
	# every key and its default: pointsd --help and docs/
	listen = 127.0.0.1:$3
	metrics_listen = 127.0.0.1:$4
	db = host=$dir/pg port=$2 dbname=points user=pointsd
	tls_cert = $dir/certs/server.crt
	tls_key = $dir/certs/server.key
	tls_ca = $dir/certs/ca.crt
	tls_crl = $dir/certs/ca.crl
	receipt_key = $dir/certs/receipt.key
	CONF
	mv "$conf.tmp" "$conf"
	say "wrote $conf"
}

stack_setup() { # DIR PGPORT TLSPORT METRICSPORT BINDIR
	local p
	mkdir -p "$1"
	S_DIR=$(cd "$1" && pwd -P)
	S_BIN=$(cd "$5" && pwd -P)
	S_ADMIN="host=$S_DIR/pg port=$2 dbname=points user=postgres"
	[[ -x $S_BIN/pointsd && -x $S_BIN/pointsctl ]] ||
		die "$S_BIN/pointsd or pointsctl is missing: run make first"
	# the postgres user (when we are root) must reach DIR/pg
	chmod a+rx "$S_DIR"
	"$ROOT/scripts/pg.sh" init "$S_DIR/pg" "$2"
	"$ROOT/scripts/pg.sh" start "$S_DIR/pg" "$2"
	ctl init >/dev/null || die "pointsctl init failed"
	"$ROOT/certs/ca" --dir "$S_DIR/certs" init --dev
	for p in "${DEMO_PARTNERS[@]}"; do
		"$ROOT/certs/ca" --dir "$S_DIR/certs" issue "${p%%|*}"
	done
	for p in "${DEMO_PARTNERS[@]}"; do
		register_partner "$p"
	done
	write_conf "$S_DIR" "$2" "$3" "$4"
}

# relative to the repository root when inside it, for short examples
rel() { echo "${1#"$ROOT"/}"; }

print_example() { # DIR TLSPORT
	local c k ca
	c=$(rel "$1/certs/partners/acme/client.crt")
	k=$(rel "$1/certs/partners/acme/client.key")
	ca=$(rel "$1/certs/ca.crt")
	cat <<-EXAMPLE

	pointsd: https://127.0.0.1:$2 (partner API, mutual TLS)

	# as partner acme, list the server's receipt keys:
	curl --cert $c --key $k --cacert $ca https://127.0.0.1:$2/v1/keys

	# sign a message with acme's key (kid acme-1) and post it:
	$(rel "$S_BIN/pointsctl") sign --key $(rel "$1/certs/partners/acme/signing.key") --kid acme-1 <<EOF > /tmp/msg.jws
	{"v":1,"type":"issue","partner":"acme","id":"ord-1001","member":"M42","points":1200,"iat":\$(date +%s)}
	EOF
	curl --cert $c --key $k --cacert $ca -H 'Content-Type: application/jose' --data-binary @/tmp/msg.jws https://127.0.0.1:$2/v1/messages

	# the operator's view:
	$(rel "$S_BIN/pointsctl") --db '$S_ADMIN' partner list

	EXAMPLE
}

pointsd_pid() { # prints the pid of a live pointsd from the pid file
	local pid
	[[ -f $PIDFILE ]] || return 1
	pid=$(cat "$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# any HTTP answer (even 403) on the TLS port means pointsd is serving
pointsd_answers() { # DIR TLSPORT
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
		--cacert "$1/certs/ca.crt" --cert "$1/certs/partners/acme/client.crt" \
		--key "$1/certs/partners/acme/client.key" "https://127.0.0.1:$2/v1/keys" || true)
	[[ -n $code && $code != 000 ]]
}

cmd_run() {
	local pid
	stack_setup "$VAR" "$DEV_PG_PORT" "$DEV_TLS_PORT" "$DEV_METRICS_PORT" "$ROOT/build"
	mkdir -p "$VAR/run" "$VAR/log"
	if pid=$(pointsd_pid); then
		die "pointsd is already running (pid $pid, make up): make down first"
	fi
	print_example "$VAR" "$DEV_TLS_PORT"
	echo "Ctrl-C stops pointsd; PostgreSQL keeps running in var/pg (make down stops it)."
	echo
	echo $$ >"$PIDFILE"
	exec "$S_BIN/pointsd" -c "$VAR/pointsd.conf"
}

cmd_up() {
	local pid i
	stack_setup "$VAR" "$DEV_PG_PORT" "$DEV_TLS_PORT" "$DEV_METRICS_PORT" "$ROOT/build"
	mkdir -p "$VAR/run" "$VAR/log"
	if pid=$(pointsd_pid); then
		say "pointsd is already running (pid $pid)"
	else
		setsid "$S_BIN/pointsd" -c "$VAR/pointsd.conf" >>"$LOGFILE" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$PIDFILE"
		for ((i = 0; i < 300; i++)); do
			pointsd_answers "$VAR" "$DEV_TLS_PORT" && break
			kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOGFILE" >&2; rm -f "$PIDFILE"; die "pointsd exited, see $LOGFILE"; }
			sleep 0.1
		done
		pointsd_answers "$VAR" "$DEV_TLS_PORT" || die "pointsd does not answer on port $DEV_TLS_PORT, see $LOGFILE"
		say "pointsd started (pid $pid, log $(rel "$LOGFILE"))"
	fi
	print_example "$VAR" "$DEV_TLS_PORT"
	echo "make down stops pointsd and PostgreSQL."
}

cmd_down() {
	local pid i
	if pid=$(pointsd_pid); then
		kill -TERM "$pid"
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "pointsd (pid $pid) did not stop within 30 s of SIGTERM: killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		say "stopped pointsd"
	fi
	rm -f "$PIDFILE"
	if [[ -d $VAR/pg ]]; then
		"$ROOT/scripts/pg.sh" stop "$VAR/pg"
		say "stopped PostgreSQL"
	fi
}

case ${1:-} in
run) cmd_run ;;
up) cmd_up ;;
down) cmd_down ;;
setup)
	(($# == 6)) || die "usage: devstack.sh setup DIR PGPORT TLSPORT METRICSPORT BINDIR"
	stack_setup "$2" "$3" "$4" "$5" "$6"
	;;
*) die "usage: devstack.sh run | up | down | setup DIR PGPORT TLSPORT METRICSPORT BINDIR" ;;
esac
