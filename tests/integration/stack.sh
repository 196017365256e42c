# shellcheck shell=bash
# stack.sh - sourced by integration tests (and by scripts/test.sh): drive the
# pointsd of the throwaway stack and report results as `ok - ...` lines.
# Never creates or removes the stack itself; scripts/test.sh owns that.
#
# Environment (exported by scripts/test.sh):
#   PTS_ROOT PTS_STACK PTS_CERTS PTS_PGHOST PTS_PGPORT PTS_PGBIN PTS_DB_ADMIN
#   PTS_DB_SERVER PTS_PORT PTS_METRICS_PORT PTS_CONF PTS_BIN PTS_ASAN
#
# pointsd:  stack_start_pointsd [ARGS]   start in the background, wait until it answers
#           stack_stop_pointsd [SIGNAL]  SIGTERM (or SIGNAL), wait; exit status in STACK_EXIT_STATUS
#           stack_restart_pointsd [ARGS] stop, then start
#           stack_sighup                 SIGHUP, then wait until the reload is logged
#           stack_pointsd_pid            print the pid of a live pointsd, else fail
# clients:  stack_curl PARTNER [CURL ARGS] PATH   curl -sS with the partner's certificate
#           stack_ctl ARGS               pointsctl as the database superuser
#           stack_psql [PSQL ARGS]       psql -X -At as the superuser (-c SQL or stdin)
#           stack_sign PARTNER [FILE]    JWS of a payload, signed with PARTNER-1
# results:  t_ok DESC / t_not_ok DESC [DETAIL] / t_check DESC CMD... /
#           t_is DESC GOT WANT / t_done (exit 1 if anything failed)

STACK_PIDFILE=${PTS_STACK:-.}/pointsd.pid
STACK_LOGFILE=${PTS_STACK:-.}/pointsd.log
STACK_EXITFILE=${PTS_STACK:-.}/pointsd.exit
STACK_EXIT_STATUS=
STACK_TESTS_FAILED=0
STACK_TESTS_RUN=0

# alive and not a zombie (a child of this shell that exited but is not reaped)
stack_pid_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
	[[ $state != Z ]]
}

# what each thread of a process that would not stop is doing: its state and
# kernel wait channel, and the user stacks when gdb is installed
stack_dump_threads() {
	local t
	for t in /proc/"$1"/task/*; do
		echo "stack: thread ${t##*/} $(cat "$t/comm" 2>/dev/null) state $(awk '{ print $3 }' "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
	done
	if command -v gdb >/dev/null 2>&1; then
		timeout 20 gdb -p "$1" -batch -ex "thread apply all bt" 2>/dev/null | grep -E '^(Thread|#)' | head -n 80
	fi
}

stack_pointsd_pid() {
	local pid
	[[ -f $STACK_PIDFILE ]] || return 1
	pid=$(cat "$STACK_PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	stack_pid_alive "$pid" || return 1
	echo "$pid"
}

# any HTTP answer (even 403) means the TLS listener is serving
stack_pointsd_answers() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
		--cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/acme/client.crt" \
		--key "$PTS_CERTS/partners/acme/client.key" "https://127.0.0.1:$PTS_PORT/v1/keys" 2>/dev/null)
	[[ -n $code && $code != 000 ]]
}

stack_start_pointsd() {
	local pid i
	if pid=$(stack_pointsd_pid); then
		echo "stack: pointsd already running (pid $pid)" >&2
		return 1
	fi
	echo "--- pointsd start $(date -u +%FT%TZ) args: $*" >>"$STACK_LOGFILE"
	rm -f "$STACK_PIDFILE" "$STACK_EXITFILE"
	# a small keeper records the exit status, whoever stops pointsd later
	(
		"$PTS_BIN/pointsd" -c "$PTS_CONF" "$@" >>"$STACK_LOGFILE" 2>&1 </dev/null &
		echo "$!" >"$STACK_PIDFILE.tmp" && mv "$STACK_PIDFILE.tmp" "$STACK_PIDFILE"
		wait "$!"
		echo "$?" >"$STACK_EXITFILE" 2>/dev/null
	) >/dev/null 2>&1 &
	for ((i = 0; i < 100; i++)); do
		[[ -s $STACK_PIDFILE ]] && break
		sleep 0.05
	done
	pid=$(cat "$STACK_PIDFILE" 2>/dev/null) || { echo "stack: pointsd did not start" >&2; return 1; }
	for ((i = 0; i < 600; i++)); do
		stack_pointsd_answers && return 0
		if ! stack_pid_alive "$pid"; then
			echo "stack: pointsd exited at start; last lines of $STACK_LOGFILE:" >&2
			tail -n 10 "$STACK_LOGFILE" >&2
			rm -f "$STACK_PIDFILE"
			return 1
		fi
		sleep 0.1
	done
	echo "stack: pointsd does not answer on port $PTS_PORT after 60 s" >&2
	return 1
}

# exit status of pointsd in STACK_EXIT_STATUS (empty if it was not started by
# stack_start_pointsd); returns 1 if it had to be killed
stack_stop_pointsd() {
	local sig=${1:-TERM} pid i st
	STACK_EXIT_STATUS=
	pid=$(stack_pointsd_pid) || { rm -f "$STACK_PIDFILE"; return 0; }
	kill "-$sig" "$pid" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		stack_pid_alive "$pid" || break
		sleep 0.1
	done
	if stack_pid_alive "$pid"; then
		echo "stack: pointsd (pid $pid) still running 30 s after SIG$sig: killing it; last lines of $STACK_LOGFILE:" >&2
		tail -n 15 "$STACK_LOGFILE" >&2
		stack_dump_threads "$pid" >&2
		kill -KILL "$pid" 2>/dev/null
		rm -f "$STACK_PIDFILE"
		return 1
	fi
	for ((i = 0; i < 50; i++)); do
		[[ -s $STACK_EXITFILE ]] && break
		sleep 0.02
	done
	if [[ -s $STACK_EXITFILE ]]; then
		STACK_EXIT_STATUS=$(cat "$STACK_EXITFILE")
	fi
	rm -f "$STACK_PIDFILE"
	return 0
}

stack_restart_pointsd() {
	stack_stop_pointsd || return 1
	stack_start_pointsd "$@"
}

# SIGHUP reloads certificates, CRL and the partner registry; wait until the
# log grows by a line about it (at most 5 s), then until the port answers
stack_sighup() {
	local pid size i
	pid=$(stack_pointsd_pid) || { echo "stack: pointsd is not running" >&2; return 1; }
	size=$(stat -c %s "$STACK_LOGFILE" 2>/dev/null || echo 0)
	kill -HUP "$pid"
	for ((i = 0; i < 50; i++)); do
		sleep 0.1
		if tail -c "+$((size + 1))" "$STACK_LOGFILE" 2>/dev/null | grep -qiE 'reload|sighup'; then
			break
		fi
	done
	for ((i = 0; i < 50; i++)); do
		stack_pointsd_answers && return 0
		stack_pid_alive "$pid" || { echo "stack: pointsd died after SIGHUP" >&2; return 1; }
		sleep 0.1
	done
	return 1
}

stack_curl() { # PARTNER [curl args] PATH-or-URL (a last /path goes to the TLS port)
	local p=$1 args
	shift
	args=("$@")
	if (($# > 0)) && [[ ${args[$# - 1]} == /* ]]; then
		args[$# - 1]=https://127.0.0.1:$PTS_PORT${args[$# - 1]}
	fi
	curl -sS --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/$p/client.crt" \
		--key "$PTS_CERTS/partners/$p/client.key" "${args[@]}"
}

stack_ctl() {
	"$PTS_BIN/pointsctl" --db "$PTS_DB_ADMIN" "$@"
}

stack_psql() {
	"$PTS_PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$PTS_DB_ADMIN" "$@"
}

stack_sign() { # PARTNER [PAYLOAD-FILE]
	local p=$1
	shift
	"$PTS_BIN/pointsctl" sign --key "$PTS_CERTS/partners/$p/signing.key" --kid "$p-1" "$@"
}

t_ok() {
	STACK_TESTS_RUN=$((STACK_TESTS_RUN + 1))
	echo "ok - $1"
}

t_not_ok() {
	STACK_TESTS_RUN=$((STACK_TESTS_RUN + 1))
	STACK_TESTS_FAILED=$((STACK_TESTS_FAILED + 1))
	echo "not ok - $1"
	if [[ -n ${2:-} ]]; then
		printf '%s\n' "$2" | sed 's/^/#   /'
	fi
}

t_check() { # DESC CMD... : ok if CMD exits 0
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		t_ok "$desc"
	else
		t_not_ok "$desc" "$out"
	fi
}

t_is() { # DESC GOT WANT
	if [[ $2 == "$3" ]]; then
		t_ok "$1"
	else
		t_not_ok "$1" "got:  $2
want: $3"
	fi
}

t_done() {
	echo "# $((STACK_TESTS_RUN - STACK_TESTS_FAILED)) of $STACK_TESTS_RUN passed"
	((STACK_TESTS_FAILED == 0))
	exit
}
