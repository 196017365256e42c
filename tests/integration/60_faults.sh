#!/bin/bash
# 60_faults.sh - pointsd under faults (issue 6): the database stopped and
# restarted, kill -9 under load with the acknowledged-id check, SIGTERM drain,
# two instances on one database, refusal of a non-durable database, metrics
# that count what was sent. Nothing acknowledged may be lost or posted twice.
set -uo pipefail
. "$(dirname "$0")/stack.sh"

RUN=f$$x$RANDOM
W=$PTS_STACK/faults
mkdir -p "$W"
PG_DIR=$PTS_STACK/pg

# a signed issue of 10 points, bytes in $W/$1.jws
mk() { # ID [PARTNER] [MEMBER]
	local p=${2:-acme} m=${3:-$RUN-m}
	printf '{"v":1,"type":"issue","partner":"%s","id":"%s","member":"%s","points":10}' "$p" "$1" "$m" |
		stack_sign "$p" >"$W/$1.jws"
}

post() { # ID [PARTNER] [PORT] -> "status entry"; "000 -" unless the whole reply arrived
	local p=${2:-acme} port=${3:-$PTS_PORT} out
	# a reply cut off by a kill (its status line sent, not all its body) is no
	# acknowledgement: curl then exits non-zero (18, 56) but still prints the status
	if ! out=$(curl -sS --max-time 10 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/$p/client.crt" \
		--key "$PTS_CERTS/partners/$p/client.key" -H 'Content-Type: application/jose' \
		--data-binary "@$W/$1.jws" -w '\n%{http_code}' "https://127.0.0.1:$port/v1/messages" 2>/dev/null); then
		echo "000 -"
		return
	fi
	printf '%s %s\n' "$(tail -n1 <<<"$out")" "$(head -n1 <<<"$out" | jq -r '.entry // .code // "-"' 2>/dev/null)"
}

metric() { # NAME{labels} -> value
	curl -s "http://127.0.0.1:$PTS_METRICS_PORT/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

# --- metrics count what was sent, and pass promtool
before=$(metric 'pointsd_http_requests_total{status="201"}')
wait_before=$(metric pointsd_queue_wait_seconds_count)
posting_before=$(metric pointsd_posting_seconds_count)
posting_inf_before=$(metric 'pointsd_posting_seconds_bucket{le="+Inf"}')
for i in 1 2 3 4 5; do mk "$RUN-met-$i"; post "$RUN-met-$i" >/dev/null; done
post "$RUN-met-1" >/dev/null
after=$(metric 'pointsd_http_requests_total{status="201"}')
t_is "metrics: five posts count five 201 replies" "$((after - before))" 5
# the replay goes through the writer as well (the database says it is one)
t_is "metrics: six postings waited in the writer queue" \
	"$(($(metric pointsd_queue_wait_seconds_count) - wait_before))" 6
t_is "metrics: six postings were answered by the writer" \
	"$(($(metric pointsd_posting_seconds_count) - posting_before))" 6
t_is "metrics: the posting histogram's +Inf bucket equals its count" \
	"$(($(metric 'pointsd_posting_seconds_bucket{le="+Inf"}') - posting_inf_before))" 6
t_check "metrics: promtool check metrics accepts /metrics" \
	bash -c "curl -s http://127.0.0.1:$PTS_METRICS_PORT/metrics | promtool check metrics"
t_is "readyz is 200 with the database up" \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PTS_METRICS_PORT/readyz")" 200

# --- limits: past max_connections a new handshake is refused while the
# connections already open are served; past partner_inflight_max that partner
# gets 503 with Retry-After while another partner is answered
stack_restart_pointsd --max-connections=2 --partner-inflight-max=1 >/dev/null
holds=()
hold() { # a connection that completes its handshake and then waits
	(sleep 6) | openssl s_client -quiet -connect "127.0.0.1:$PTS_PORT" \
		-cert "$PTS_CERTS/partners/$1/client.crt" -key "$PTS_CERTS/partners/$1/client.key" \
		-CAfile "$PTS_CERTS/ca.crt" >/dev/null 2>&1 &
	holds+=($!)
}
hold acme
hold globex
sleep 1
t_is "connection cap: two connections are open" "$(metric pointsd_connections)" 2
curl -s -o /dev/null --max-time 3 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/acme/client.crt" \
	--key "$PTS_CERTS/partners/acme/client.key" "https://127.0.0.1:$PTS_PORT/v1/keys"
st=$?
t_check "connection cap: a third connection's handshake is refused (curl exit $st)" test "$st" -eq 35 -o "$st" -eq 56
wait "${holds[@]}"
stack_restart_pointsd --partner-inflight-max=1 >/dev/null
mk "$RUN-cap-seed" acme "$RUN-capm"
post "$RUN-cap-seed" >/dev/null
printf '{"v":1,"type":"redeem","partner":"acme","id":"%s-cap-1","member":"%s-capm","points":1}' "$RUN" "$RUN" |
	stack_sign acme >"$W/$RUN-cap-1.jws"
mk "$RUN-cap-2"
mk "$RUN-cap-g" globex
# hold the member's account: acme's redeem waits in the ledger, in flight
stack_psql -c "BEGIN; SELECT 1 FROM accounts WHERE kind = 'member' AND member = '$RUN-capm' FOR UPDATE;
	SELECT pg_sleep(1.5); COMMIT" >/dev/null &
hpid=$!
sleep 0.3
post "$RUN-cap-1" >"$W/cap-1.res" &
ppid=$!
sleep 0.3
hdr=$(curl -sS -D - -o "$W/cap-2.body" --max-time 5 --cacert "$PTS_CERTS/ca.crt" \
	--cert "$PTS_CERTS/partners/acme/client.crt" --key "$PTS_CERTS/partners/acme/client.key" \
	-H 'Content-Type: application/jose' --data-binary "@$W/$RUN-cap-2.jws" \
	"https://127.0.0.1:$PTS_PORT/v1/messages")
t_is "partner cap: acme's second request while one is in flight: 503 unavailable" \
	"$(head -n1 <<<"$hdr" | awk '{ print $2 }') $(jq -r .code "$W/cap-2.body")" "503 unavailable"
t_check "partner cap: the 503 carries Retry-After" grep -qi '^retry-after:' <<<"$hdr"
t_is "partner cap: globex is still served, not refused" "$(post "$RUN-cap-g" globex | cut -d' ' -f1)" 201
wait "$ppid" "$hpid"
t_is "partner cap: acme's in-flight redeem was posted" "$(cut -d' ' -f1 "$W/cap-1.res")" 201
t_is "partner cap: the refused message was not posted" \
	"$(stack_psql -c "SELECT count(*) FROM messages WHERE msg_id = '$RUN-cap-2'")" 0
stack_restart_pointsd >/dev/null

# --- a posting statement that cannot be prepared (post_group() missing, as in
# the middle of a migration) fails its message with 503 and is prepared again,
# with the others, on the next group once the function is back
PG_SIG='text[], text[], text[], text[], text[], text[], text[], text[], bigint[], text[]'
mk "$RUN-prep"
stack_psql -c "ALTER FUNCTION post_group($PG_SIG) RENAME TO post_group_away" >/dev/null
t_is "prepare fails: POST answers 503 unavailable" "$(post "$RUN-prep")" "503 unavailable"
stack_psql -c "ALTER FUNCTION post_group_away($PG_SIG) RENAME TO post_group" >/dev/null
t_is "prepare again: the resent identical bytes are posted" "$(post "$RUN-prep" | cut -d' ' -f1)" 201
t_is "prepare again: the message is stored once" \
	"$(stack_psql -c "SELECT count(*) FROM messages WHERE msg_id = '$RUN-prep'")" 1

# --- the database stopped: 503 within the db timeout, then recovery by itself
mk "$RUN-down"
"$PTS_ROOT/scripts/pg.sh" stop "$PG_DIR" immediate >/dev/null 2>&1
t0=$(date +%s%N)
r=$(post "$RUN-down")
t1=$(date +%s%N)
t_is "database down: POST answers 503 unavailable" "$r" "503 unavailable"
ms=$(((t1 - t0) / 1000000))
t_check "database down: the 503 came within 2.5 s (took ${ms} ms)" test "$ms" -lt 2500
t_is "database down: readyz is 503" \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PTS_METRICS_PORT/readyz")" 503
"$PTS_ROOT/scripts/pg.sh" start "$PG_DIR" "$PTS_PGPORT" >/dev/null 2>&1
ok=0
for ((i = 0; i < 50; i++)); do
	r=$(post "$RUN-down")
	if [[ $r == 201* || $r == 200* ]]; then ok=1; break; fi
	sleep 0.1
done
t_check "database back: the resent identical bytes are posted within 5 s, no restart" test "$ok" = 1
t_is "database back: the message is stored once" \
	"$(stack_psql -c "SELECT count(*) FROM messages WHERE msg_id = '$RUN-down'")" 1

# --- a lock held past the db timeout: 503 within it, for every message of
# the group (no second wait, no retry one message at a time), then posted
mk "$RUN-lk0" acme "$RUN-lk"
post "$RUN-lk0" >/dev/null
for i in 1 2 3 4; do mk "$RUN-lk$i" acme "$RUN-lk"; done
stack_psql -c "BEGIN; SELECT 1 FROM accounts WHERE kind = 'member' AND member = '$RUN-lk' FOR UPDATE;
	SELECT pg_sleep(6); COMMIT" >/dev/null 2>&1 &
lpid=$!
sleep 0.5
t0=$(date +%s%N)
lkpids=()
for i in 1 2 3 4; do
	post "$RUN-lk$i" >"$W/lk$i.res" &
	lkpids+=($!)
done
wait "${lkpids[@]}"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
t_is "member locked past the db timeout: every message answers 503 unavailable" \
	"$(cat "$W"/lk[1-4].res | sort | uniq -c | awk '{ print $1, $2, $3 }')" "4 503 unavailable"
t_check "member locked: the 503s came within 3.5 s, not a timeout per message (took ${ms} ms)" \
	test "$ms" -lt 3500
wait "$lpid"
t_is "member locked: nothing of theirs was posted" \
	"$(stack_psql -c "SELECT count(*) FROM messages WHERE msg_id LIKE '$RUN-lk_' AND msg_id <> '$RUN-lk0'")" 0
t_is "lock released: the resent identical bytes are posted" "$(post "$RUN-lk1" | cut -d' ' -f1)" 201

# --- refusal of a database that would lose acknowledged commits
stack_psql -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
out=$("$PTS_BIN/pointsd" -c "$PTS_CONF" --listen=127.0.0.1:0 --metrics-listen= --check 2>&1)
st=$?
t_check "synchronous_commit=off: pointsd refuses to start (exit $st)" test "$st" -ne 0
t_check "synchronous_commit=off: the reason names it" grep -q 'synchronous_commit=off' <<<"$out"
out=$("$PTS_BIN/pointsd" -c "$PTS_CONF" --metrics-listen= --unsafe-no-durability --check 2>&1)
t_check "--unsafe-no-durability overrides the refusal" test $? -eq 0
stack_psql -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null

# --- two instances on one database: the same message sent to both at once is posted once
free_port() {
	local p
	for ((p = 20000 + RANDOM % 12000; ; p++)); do
		ss -ltn | awk '{ print $4 }' | grep -q ":$p\$" || { echo "$p"; return; }
	done
}
P2=$(free_port)
"$PTS_BIN/pointsd" -c "$PTS_CONF" --listen=127.0.0.1:$P2 --metrics-listen= >>"$W/second.log" 2>&1 &
pid2=$!
for ((i = 0; i < 50; i++)); do
	curl -s -o /dev/null --max-time 1 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/acme/client.crt" \
		--key "$PTS_CERTS/partners/acme/client.key" "https://127.0.0.1:$P2/v1/keys" && break
	sleep 0.1
done
for i in $(seq 1 20); do mk "$RUN-two-$i"; done
cpids=()
for i in $(seq 1 20); do
	post "$RUN-two-$i" acme "$PTS_PORT" >"$W/two-a-$i" &
	cpids+=($!)
	post "$RUN-two-$i" acme "$P2" >"$W/two-b-$i" &
	cpids+=($!)
done
wait "${cpids[@]}"
bad=0
for i in $(seq 1 20); do
	a=$(cut -d' ' -f1 "$W/two-a-$i") b=$(cut -d' ' -f1 "$W/two-b-$i")
	ea=$(cut -d' ' -f2 "$W/two-a-$i") eb=$(cut -d' ' -f2 "$W/two-b-$i")
	[[ "$a $b" == "201 200" || "$a $b" == "200 201" ]] && [[ $ea == "$eb" ]] || bad=$((bad + 1))
done
t_is "two instances: each of 20 messages sent to both is one 201 and one 200 with the same entry" "$bad" 0
t_is "two instances: 20 messages stored" \
	"$(stack_psql -c "SELECT count(*) FROM messages WHERE msg_id LIKE '$RUN-two-%'")" 20
kill -TERM "$pid2"
wait "$pid2"
t_is "two instances: the second exits 0 on SIGTERM" "$?" 0

# --- SIGTERM drains: a batch already received is committed and answered
: >"$W/drain.txt"
for i in $(seq 1 500); do
	printf '{"v":1,"type":"issue","partner":"acme","id":"%s-d%d","member":"%s-dm","points":1}\n' "$RUN" "$i" "$RUN"
done | while IFS= read -r line; do printf '%s\n' "$line" | stack_sign acme; done >"$W/drain.txt"
curl -sS --max-time 30 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/acme/client.crt" \
	--key "$PTS_CERTS/partners/acme/client.key" -H 'Content-Type: application/jose' \
	--data-binary "@$W/drain.txt" -o "$W/drain.out" -w '%{http_code}' \
	"https://127.0.0.1:$PTS_PORT/v1/batches" >"$W/drain.code" 2>"$W/drain.err" &
cpid=$!
# SIGTERM as soon as the batch is in flight (received, waiting for its commit)
for ((i = 0; i < 200; i++)); do
	[[ $(metric pointsd_inflight_requests) -gt 0 ]] 2>/dev/null && break
	sleep 0.01
done
stack_stop_pointsd TERM
t_is "SIGTERM: pointsd exits 0" "${STACK_EXIT_STATUS:-}" 0
wait "$cpid"
t_is "SIGTERM: the in-flight batch got its 200, no reset" "$(cat "$W/drain.code")" 200
t_is "SIGTERM: all 500 lines posted" "$(jq '[.results[] | select(.status == "posted")] | length' "$W/drain.out" 2>/dev/null)" 500
stack_start_pointsd >/dev/null

# --- kill -9 under load: every acknowledged message is there, resends never post twice
N=300
for i in $(seq 1 $N); do mk "$RUN-k$i" acme "$RUN-km$((i % 7))"; done
: >"$W/acks"
(
	for i in $(seq 1 $N); do
		post "$RUN-k$i" >"$W/k$i.res" &
		((i % 8 == 0)) && wait
	done
	wait
) &
lpid=$!
sleep 2
kill -KILL "$(stack_pointsd_pid)"
wait "$lpid"
rm -f "$PTS_STACK/pointsd.pid"
stack_start_pointsd >/dev/null
acked=0 lost=0 moved=0
for i in $(seq 1 $N); do
	read -r code entry <"$W/k$i.res"
	if [[ $code == 201 || $code == 200 ]]; then
		acked=$((acked + 1))
		got=$(stack_psql -c "SELECT entry_id FROM messages WHERE partner_id = 'acme' AND msg_id = '$RUN-k$i'")
		[[ -n $got ]] || lost=$((lost + 1))
		if [[ -n $got && $got != "$entry" ]]; then
			moved=$((moved + 1))
			echo "# $RUN-k$i: answered $code with entry '$entry', stored with entry $got"
		fi
	fi
done
t_check "kill -9: some messages were acknowledged before the kill ($acked of $N)" test "$acked" -gt 0
t_is "kill -9: no acknowledged message is lost" "$lost" 0
t_is "kill -9: every acknowledged message kept its entry" "$moved" 0
bad=0
for i in $(seq 1 $N); do
	read -r code _ <"$W/k$i.res"
	[[ $code == 201 || $code == 200 ]] && continue
	r=$(post "$RUN-k$i")
	[[ $r == 201* || $r == 200* ]] || bad=$((bad + 1))
done
t_is "kill -9: every unanswered message resent is posted or replayed" "$bad" 0
t_is "kill -9: each of the $N messages is stored exactly once" \
	"$(stack_psql -c "SELECT count(*) || ' ' || count(DISTINCT msg_id) FROM messages WHERE msg_id LIKE '$RUN-k%'")" "$N $N"
t_is "kill -9: the members' balances equal 10 points per message" \
	"$(stack_psql -c "SELECT sum(credits_posted - debits_posted) FROM accounts WHERE member LIKE '$RUN-km%'")" $((N * 10))

t_done
