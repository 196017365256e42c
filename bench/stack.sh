# shellcheck shell=bash
# stack.sh - starting and stopping the pointsd of a benchmark's own stack;
# sourced by bench/run.sh and bench/growth.sh. Uses ROOT, BUILD, DIR,
# TLSPORT and die() of the script; sets PD_PID. Never touches another stack.

# start pointsd on the stack's configuration and wait until it answers
# GET /v1/keys over mutual TLS (30 s at most: a large ledger takes a while)
start_pointsd() { # [--key=value ...]
	local i
	setsid "$ROOT/$BUILD/pointsd" -c "$DIR/pointsd.conf" "$@" >>"$DIR/pointsd.log" 2>&1 </dev/null &
	PD_PID=$!
	for ((i = 0; i < 300; i++)); do
		if curl -s -o /dev/null --max-time 2 --cacert "$DIR/certs/ca.crt" \
			--cert "$DIR/certs/partners/acme/client.crt" --key "$DIR/certs/partners/acme/client.key" \
			"https://127.0.0.1:$TLSPORT/v1/keys"; then
			return 0
		fi
		kill -0 "$PD_PID" 2>/dev/null || { tail -n 5 "$DIR/pointsd.log" >&2; die "pointsd exited"; }
		sleep 0.1
	done
	die "pointsd does not answer on port $TLSPORT"
}

# SIGTERM (pointsd drains), SIGKILL after 30 s
stop_pointsd() {
	local i
	[[ -n $PD_PID ]] || return 0
	kill -TERM "$PD_PID" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$PD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$PD_PID" 2>/dev/null || true
	PD_PID=''
}
