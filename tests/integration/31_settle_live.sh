#!/bin/bash
# 31_settle_live.sh - settlement against live servers (issue 7): postings
# racing a period cut-over never join the settled period, and of two pointsd
# instances on one database exactly one settles a due period by itself.
# Works in a database of its own, so that it can shape its periods.
set -uo pipefail
. "$(dirname "$0")/stack.sh"

RUN=s$$x$RANDOM
W=$PTS_STACK/settle_$RUN
mkdir -p "$W"
PIDS=()
DBS=()

use_db() { # NAME: a fresh database with acme and globex, grace 0
	DB=$1
	ADMIN="host=$PTS_PGHOST port=$PTS_PGPORT dbname=$DB user=postgres"
	SERVER="host=$PTS_PGHOST port=$PTS_PGPORT dbname=$DB user=pointsd"
	DBS+=("$DB")
	"$PTS_PGBIN/createdb" -h "$PTS_PGHOST" -p "$PTS_PGPORT" -U postgres "$DB" || return 1
	ctl init >/dev/null || return 1
	for p in acme globex; do
		ctl partner add "$p" --name "$p" --cert "$PTS_CERTS/partners/$p/client.crt" >/dev/null &&
			ctl key add "$p" --kid "$p-1" --public-key "$PTS_CERTS/partners/$p/signing.pub" >/dev/null &&
			ctl rate set "$p" --issue-price 0.01 --redeem-price 0.008 --clearing-fee 0.001 >/dev/null &&
			ctl partner activate "$p" >/dev/null || return 1
	done
	q -c "UPDATE settings SET grace_seconds = 0"
}

cleanup() {
	local p d
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for d in "${DBS[@]}"; do
		"$PTS_PGBIN/dropdb" -h "$PTS_PGHOST" -p "$PTS_PGPORT" -U postgres --if-exists "$d" 2>/dev/null
	done
}
trap cleanup EXIT

q() { "$PTS_PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$ADMIN" "$@"; }
ctl() { "$PTS_BIN/pointsctl" --db "$ADMIN" "$@"; }

free_port() {
	local p
	for ((p = 20000 + RANDOM % 12000; ; p++)); do
		ss -ltn | awk '{ print $4 }' | grep -q ":$p\$" || { echo "$p"; return; }
	done
}

start_instance() { # NAME -> port in $W/NAME.port
	local port mport pid i
	port=$(free_port)
	mport=$(free_port)
	while [[ $mport == "$port" ]]; do mport=$(free_port); done
	"$PTS_BIN/pointsd" -c "$PTS_CONF" --db="$SERVER" --listen=127.0.0.1:$port \
		--metrics-listen=127.0.0.1:$mport >"$W/$1.log" 2>&1 </dev/null &
	pid=$!
	PIDS+=("$pid")
	echo "$port" >"$W/$1.port"
	for ((i = 0; i < 300; i++)); do
		curl -s -o /dev/null --max-time 1 --cacert "$PTS_CERTS/ca.crt" \
			--cert "$PTS_CERTS/partners/acme/client.crt" --key "$PTS_CERTS/partners/acme/client.key" \
			"https://127.0.0.1:$port/v1/keys" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "# pointsd $1 did not answer on $port; its log:"
	tail -n 5 "$W/$1.log" | sed 's/^/#   /'
	return 1
}

use_db "settle_${RUN}_race" || { t_not_ok "race: a database of its own"; t_done; }

# --- postings racing a cut-over. A period of a few seconds, ending soon;
# four clients post as fast as they can across its end; then it is settled.
# (The period goes in before pointsd starts: pointsd makes the row of the
# period of now() + 60 s at start-up, here the rest of the day after it.)
for c in 1 2 3 4; do
	for i in $(seq 1 60); do
		printf '{"v":1,"type":"issue","partner":"acme","id":"%s-c%d-%d","member":"%s-m%d","points":5}\n' \
			"$RUN" "$c" "$i" "$RUN" "$c"
	done | while IFS= read -r l; do printf '%s\n' "$l" | stack_sign acme; done >"$W/c$c.jws"
done
q -c "INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
      VALUES ('race-$RUN', 'daily', 'UTC', now() - interval '1 second', now() + interval '5 seconds')"
start_instance race || { t_not_ok "race: pointsd starts on its own database"; t_done; }
PORT=$(cat "$W/race.port")
t_is "race: pointsd made the period row after the short one at start-up" \
	"$(q -c "SELECT count(*) FROM periods p, periods r WHERE r.label = 'race-$RUN'
	         AND p.starts_at = r.ends_at AND p.ends_at > now() + interval '60 seconds'")" 1
for c in 1 2 3 4; do
	(
		end=$(($(date +%s) + 8))
		while IFS= read -r jws && (($(date +%s) < end)); do
			printf '%s' "$jws" >"$W/c$c.one"
			curl -s --max-time 5 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/acme/client.crt" \
				--key "$PTS_CERTS/partners/acme/client.key" -H 'Content-Type: application/jose' \
				--data-binary "@$W/c$c.one" "https://127.0.0.1:$PORT/v1/messages" |
				jq -r 'select(.status == "posted") | "\(.id) \(.entry) \(.period)"'
			sleep 0.05
		done <"$W/c$c.jws" >"$W/c$c.acks"
	) &
	cpids+=($!)
done
# settle the moment the period has ended, while the clients keep posting
for ((i = 0; i < 400; i++)); do
	q -c "SELECT clock_timestamp() >= ends_at FROM periods WHERE label = 'race-$RUN'" | grep -q t && break
	sleep 0.05
done
out=$(ctl settle --period "race-$RUN" --receipt-key "$PTS_CERTS/receipt.key" 2>&1)
t_check "race: the period settles while postings continue ($out)" test $? -eq 0
wait "${cpids[@]}"
in_period=$(q -c "SELECT count(*) FROM entries WHERE period = 'race-$RUN'")
sealed=$(q -c "SELECT count FROM period_seals WHERE period = 'race-$RUN'")
t_check "race: entries were posted inside the period ($in_period)" test "${in_period:-0}" -gt 0
t_check "race: entries were posted after it too" \
	test "$(q -c "SELECT count(*) FROM entries WHERE period <> 'race-$RUN'")" -gt 0
t_is "race: the seal counts every entry of the period, none joined later" "$sealed" "$in_period"
t_is "race: every entry of the period was accepted before its end" \
	"$(q -c "SELECT count(*) FROM entries e JOIN periods p ON p.label = e.period
	         WHERE e.period = 'race-$RUN' AND e.accepted_at >= p.ends_at")" 0
t_is "race: no entry after the end is in the period" \
	"$(q -c "SELECT count(*) FROM entries e, periods p WHERE p.label = 'race-$RUN'
	         AND e.accepted_at >= p.ends_at AND e.period = p.label")" 0
acks=$(cat "$W"/c*.acks | wc -l)
t_is "race: every acknowledged message is stored with its entry and period" \
	"$(cat "$W"/c*.acks | while read -r id entry period; do
		q -c "SELECT count(*) FROM messages WHERE msg_id = '$id' AND entry_id = $entry AND period = '$period'"
	done | grep -c '^1$')" "$acks"
t_is "race: the batch's issued points are the period's" \
	"$(q -c "SELECT l.issued_points FROM batch_lines l JOIN settlement_batches b ON b.id = l.batch_id
	         WHERE b.period = 'race-$RUN' AND l.partner_id = 'acme'")" \
	"$((in_period * 5))"

# --- two instances: a due period is settled by exactly one of them
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null
PIDS=()
use_db "settle_${RUN}_two" || { t_not_ok "two instances: a database of its own"; t_done; }
q -c "INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
      VALUES ('due-$RUN', 'daily', 'UTC', now() + interval '9 seconds', now() + interval '12 seconds')"
start_instance one || t_not_ok "two instances: the first starts"
start_instance two || t_not_ok "two instances: the second starts"
for i in $(seq 1 3); do
	printf '{"v":1,"type":"issue","partner":"globex","id":"%s-due-%d","member":"%s-d","points":7}' "$RUN" "$i" "$RUN" |
		stack_sign globex >"$W/due$i.jws"
done
for ((i = 0; i < 300; i++)); do
	q -c "SELECT clock_timestamp() >= starts_at FROM periods WHERE label = 'due-$RUN'" | grep -q t && break
	sleep 0.1
done
for i in 1 2 3; do
	curl -s -o /dev/null --max-time 5 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/globex/client.crt" \
		--key "$PTS_CERTS/partners/globex/client.key" -H 'Content-Type: application/jose' \
		--data-binary "@$W/due$i.jws" "https://127.0.0.1:$(cat "$W/two.port")/v1/messages"
done
t_is "two instances: the entries landed in the short period" \
	"$(q -c "SELECT count(*) FROM entries WHERE period = 'due-$RUN'")" 3
# the control threads look every 10 s; give them two rounds after the end
for ((i = 0; i < 300; i++)); do
	[[ $(q -c "SELECT count(*) FROM settlement_batches WHERE period = 'due-$RUN'") == 1 ]] && break
	sleep 0.1
done
sleep 11
t_is "two instances: the due period has exactly one batch" \
	"$(q -c "SELECT count(*) FROM settlement_batches WHERE period = 'due-$RUN'")" 1
t_is "two instances: and one seal" "$(q -c "SELECT count(*) FROM period_seals WHERE period = 'due-$RUN'")" 1
t_is "two instances: exactly one of them logged the settlement" \
	"$(cat "$W/one.log" "$W/two.log" | grep -c '"event":"settled"')" 1
t_is "two instances: the batch charges globex 3 x 7 points x 0.01" \
	"$(q -c "SELECT l.net_minor FROM batch_lines l JOIN settlement_batches b ON b.id = l.batch_id
	         WHERE b.period = 'due-$RUN' AND l.partner_id = 'globex'")" 21
t_done
