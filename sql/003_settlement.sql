-- 003_settlement.sql - program settings changes, period cut-over, pricing and
-- the settlement batch (both models), partner statements and period seals.
-- A batch, once written, is never recomputed: every settlement table is
-- append-only and a second settle of a period returns the stored batch.

-- ---------------------------------------------------------------- settings

-- ISO 4217 currencies and their minor-unit exponents.
CREATE TABLE currencies (
	code     char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
	exponent int NOT NULL CHECK (exponent BETWEEN 0 AND 4)
);
INSERT INTO currencies (code, exponent) VALUES
	('AED', 2), ('AUD', 2), ('BHD', 3), ('BRL', 2), ('CAD', 2), ('CHF', 2),
	('CLP', 0), ('CNY', 2), ('CZK', 2), ('DKK', 2), ('EUR', 2), ('GBP', 2),
	('HKD', 2), ('HUF', 2), ('IDR', 2), ('ILS', 2), ('INR', 2), ('ISK', 0),
	('JOD', 3), ('JPY', 0), ('KRW', 0), ('KWD', 3), ('MXN', 2), ('MYR', 2),
	('NOK', 2), ('NZD', 2), ('OMR', 3), ('PHP', 2), ('PLN', 2), ('QAR', 2),
	('RON', 2), ('SAR', 2), ('SEK', 2), ('SGD', 2), ('THB', 2), ('TND', 3),
	('TRY', 2), ('TWD', 2), ('UGX', 0), ('USD', 2), ('VND', 0), ('XAF', 0),
	('XOF', 0), ('ZAR', 2);

-- One setting changed by name; raises settings_invalid (22023) with a
-- one-line reason. The currency and the model are fixed once the first
-- message is posted; cycle and timezone apply from the next period.
CREATE FUNCTION settings_set(p_key text, p_value text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_exp  int;
	v_secs numeric;
BEGIN
	PERFORM 1 FROM settings FOR UPDATE;
	IF p_key IN ('currency', 'model') AND EXISTS (SELECT 1 FROM entries WHERE kind = 'message') THEN
		RAISE EXCEPTION 'the currency and the model are fixed once the first message is posted'
			USING ERRCODE = '22023';
	END IF;
	CASE p_key
	WHEN 'currency' THEN
		SELECT exponent INTO v_exp FROM currencies WHERE code = upper(p_value);
		IF v_exp IS NULL OR p_value !~ '^[A-Za-z]{3}$' THEN
			RAISE EXCEPTION 'unknown currency %: an ISO 4217 code such as CNY, EUR or JPY', p_value
				USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET currency = upper(p_value), currency_exponent = v_exp;
	WHEN 'model' THEN
		IF p_value NOT IN ('prepaid', 'on_redemption') THEN
			RAISE EXCEPTION 'model must be prepaid or on_redemption' USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET model = p_value;
	WHEN 'cycle' THEN
		IF p_value NOT IN ('daily', 'weekly', 'monthly') THEN
			RAISE EXCEPTION 'cycle must be daily, weekly or monthly' USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET cycle = p_value;
	WHEN 'timezone' THEN
		IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_value) THEN
			RAISE EXCEPTION 'unknown time zone %: an IANA name such as UTC or Europe/Berlin', p_value
				USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET timezone = p_value;
	WHEN 'grace_seconds', 'grace' THEN
		IF p_value ~ '^[0-9]{1,9}$' THEN
			v_secs := p_value::numeric;
		ELSE
			BEGIN
				v_secs := extract(epoch FROM p_value::interval);
			EXCEPTION WHEN others THEN
				RAISE EXCEPTION 'grace must be seconds or an interval such as ''1 hour''' USING ERRCODE = '22023';
			END;
		END IF;
		IF v_secs < 0 OR v_secs > 2147483647 OR v_secs <> trunc(v_secs) THEN
			RAISE EXCEPTION 'grace must be 0 or more whole seconds' USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET grace_seconds = v_secs::int;
	WHEN 'validity_rule' THEN
		IF p_value NOT IN ('months', 'calendar_year') THEN
			RAISE EXCEPTION 'validity_rule must be months or calendar_year' USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET validity_rule = p_value;
	WHEN 'validity_n' THEN
		IF p_value !~ '^[0-9]{1,3}$' OR p_value::int NOT BETWEEN 1 AND 100 THEN
			RAISE EXCEPTION 'validity_n must be a whole number from 1 to 100' USING ERRCODE = '22023';
		END IF;
		UPDATE settings SET validity_n = p_value::int;
	ELSE
		RAISE EXCEPTION 'unknown setting %: currency, model, cycle, timezone, grace_seconds, validity_rule, validity_n', p_key
			USING ERRCODE = '22023';
	END CASE;
END
$$;

-- ---------------------------------------------------------------- money

-- micros (exact, may have a fraction) in minor units of a currency with
-- the given exponent, rounded half to even. PostgreSQL's round() rounds
-- half away from zero, so the tie is decided here.
CREATE FUNCTION round_half_even_micros(micros numeric, exponent int) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
	d numeric;
	f numeric;
	r numeric;
BEGIN
	IF exponent < 0 OR exponent > 6 THEN
		RAISE EXCEPTION 'round_half_even_micros: exponent % out of range', exponent;
	END IF;
	d := 10::numeric ^ (6 - exponent);
	f := floor(micros / d);
	r := micros - f * d;
	IF 2 * r > d OR (2 * r = d AND mod(f, 2) <> 0) THEN
		f := f + 1;
	END IF;
	RETURN f::bigint;
END
$$;

-- minor units as a decimal text in major units: (13700, 2) -> 137.00
CREATE FUNCTION money_format_minor(minor bigint, exponent int) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE WHEN exponent = 0 THEN minor::text
		ELSE CASE WHEN minor < 0 THEN '-' ELSE '' END
			|| div(abs(minor::numeric), 10::numeric ^ exponent)::numeric(40, 0)::text
			|| '.' || lpad(mod(abs(minor::numeric), 10::numeric ^ exponent)::numeric(40, 0)::text,
				exponent, '0')
		END
$$;

-- RFC 8785 form of a document whose numbers are integers: object keys
-- sorted by code point, no whitespace. Same bytes as jansson's
-- JSON_COMPACT | JSON_SORT_KEYS for such documents.
CREATE FUNCTION canonical_json(j jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
	CASE jsonb_typeof(j)
	WHEN 'object' THEN
		RETURN '{' || coalesce((SELECT string_agg(to_json(x.k)::text || ':' || canonical_json(x.v),
			',' ORDER BY x.k COLLATE "C") FROM jsonb_each(j) AS x(k, v)), '') || '}';
	WHEN 'array' THEN
		RETURN '[' || coalesce((SELECT string_agg(canonical_json(x.v), ',' ORDER BY x.n)
			FROM jsonb_array_elements(j) WITH ORDINALITY AS x(v, n)), '') || ']';
	ELSE
		RETURN j::text;
	END CASE;
END
$$;

-- ---------------------------------------------------------------- tables

CREATE TABLE settlement_batches (
	id                  bigserial PRIMARY KEY,
	period              text NOT NULL UNIQUE REFERENCES periods (label),
	model               text NOT NULL CHECK (model IN ('prepaid', 'on_redemption')),
	currency            char(3) NOT NULL,
	exponent            int NOT NULL,
	created_at          timestamptz NOT NULL,
	operator_net_minor  bigint NOT NULL,
	document            text NOT NULL,
	sha256              text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

-- One line per partner active in the period. Money in signed minor units:
-- positive = the partner is charged, negative = credited.
CREATE TABLE batch_lines (
	batch_id                  bigint NOT NULL REFERENCES settlement_batches (id)
	                          DEFERRABLE INITIALLY DEFERRED,
	partner_id                text NOT NULL REFERENCES partners (id),
	issued_points             bigint NOT NULL,
	issue_reversed_points     bigint NOT NULL,
	redeemed_points           bigint NOT NULL,
	redeem_reversed_points    bigint NOT NULL,
	expired_points            bigint NOT NULL,
	issued_minor              bigint NOT NULL,
	issue_reversed_minor      bigint NOT NULL,
	redeemed_minor            bigint NOT NULL,
	redeem_reversed_minor     bigint NOT NULL,
	fees_minor                bigint NOT NULL,
	interchange_payable_minor bigint NOT NULL,
	interchange_receivable_minor bigint NOT NULL,
	net_minor                 bigint NOT NULL,
	direction                 text NOT NULL CHECK (direction IN ('pay', 'receive', 'none')),
	PRIMARY KEY (batch_id, partner_id),
	CHECK (net_minor = issued_minor + issue_reversed_minor + redeemed_minor
		+ redeem_reversed_minor + fees_minor + interchange_payable_minor
		+ interchange_receivable_minor),
	CHECK (direction = CASE WHEN net_minor > 0 THEN 'pay' WHEN net_minor < 0 THEN 'receive' ELSE 'none' END)
);
CREATE INDEX batch_lines_partner ON batch_lines (partner_id, batch_id);

-- Points of issuer's lots redeemed at redeemer, net of redeem reversals;
-- on_redemption: the money the issuer owes the redeemer (0 for itself).
CREATE TABLE interchange (
	batch_id      bigint NOT NULL REFERENCES settlement_batches (id) DEFERRABLE INITIALLY DEFERRED,
	issuer        text NOT NULL REFERENCES partners (id),
	redeemer      text NOT NULL REFERENCES partners (id),
	points        bigint NOT NULL,
	amount_micros numeric NOT NULL,
	amount_minor  bigint,
	PRIMARY KEY (batch_id, issuer, redeemer)
);

-- After multilateral netting: one instruction per partner with a non-zero
-- net, against the operator's settlement account.
CREATE TABLE payments (
	batch_id     bigint NOT NULL REFERENCES settlement_batches (id) DEFERRABLE INITIALLY DEFERRED,
	partner_id   text NOT NULL REFERENCES partners (id),
	direction    text NOT NULL CHECK (direction IN ('pay', 'receive')),
	amount_minor bigint NOT NULL CHECK (amount_minor > 0),
	account      text NOT NULL DEFAULT 'settlement:bank',
	PRIMARY KEY (batch_id, partner_id)
);

-- Double entry in money: each row moves amount_minor from debit to credit.
CREATE TABLE money_journal (
	batch_id     bigint NOT NULL REFERENCES settlement_batches (id) DEFERRABLE INITIALLY DEFERRED,
	seq          int NOT NULL CHECK (seq >= 1),
	item         text NOT NULL,
	debit        text NOT NULL,
	credit       text NOT NULL,
	amount_minor bigint NOT NULL CHECK (amount_minor > 0),
	PRIMARY KEY (batch_id, seq),
	CHECK (debit <> credit)
);

-- The seal of a settled period (ledger.md §5); hashes in lower-case hex.
CREATE TABLE period_seals (
	period        text PRIMARY KEY REFERENCES periods (label),
	batch_id      bigint NOT NULL UNIQUE REFERENCES settlement_batches (id),
	count         bigint NOT NULL CHECK (count >= 0),
	first_entry   bigint,
	last_entry    bigint,
	chain         text NOT NULL CHECK (chain ~ '^[0-9a-f]{64}$'),
	prev          text NOT NULL CHECK (prev ~ '^[0-9a-f]{64}$'),
	batch_sha256  text NOT NULL CHECK (batch_sha256 ~ '^[0-9a-f]{64}$'),
	seal          text NOT NULL,
	kid           text NOT NULL REFERENCES receipt_keys (kid),
	created_at    timestamptz NOT NULL DEFAULT now(),
	CHECK ((count = 0) = (first_entry IS NULL) AND (count = 0) = (last_entry IS NULL))
);

SELECT make_append_only(t) FROM unnest('{settlement_batches,batch_lines,interchange,payments,money_journal,period_seals}'::regclass[]) AS t;

-- ---------------------------------------------------------------- cut-over

-- Key of the settlement lock (ASCII "settle"): one settler at a time.
CREATE FUNCTION settle_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 126879582678117::bigint $$;

-- Closes a period: the posting lock taken exclusively waits for every
-- posting in flight (they hold it shared), never a clock margin. Refuses
-- (PT001) a period whose end is not reached; PT002: no such period.
-- The caller commits at once: postings wait while this transaction lives.
CREATE FUNCTION settle_close_period(p_label text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	PERFORM pg_advisory_xact_lock(post_lock_key());
	SELECT p.status, p.ends_at INTO r FROM periods p WHERE p.label = p_label FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no period %', p_label USING ERRCODE = 'PT002';
	END IF;
	IF r.status = 'closed' THEN
		RETURN;
	END IF;
	IF clock_timestamp() < r.ends_at THEN
		RAISE EXCEPTION 'period % is open until %', p_label,
			to_char(r.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
			USING ERRCODE = 'PT001';
	END IF;
	UPDATE periods SET status = 'closed', closed_at = clock_timestamp() WHERE label = p_label;
END
$$;

-- ---------------------------------------------------------------- batch

-- The exact money of one period per partner and line item, in micros.
CREATE FUNCTION settle_period_sums(p_label text)
RETURNS TABLE (partner_id text, issued_points bigint, issue_reversed_points bigint,
	redeemed_points bigint, redeem_reversed_points bigint, expired_points bigint,
	issued_micros numeric, issue_reversed_micros numeric, redeemed_micros numeric,
	redeem_reversed_micros numeric, fees_micros numeric)
LANGUAGE sql STABLE AS $$
	WITH pe AS (
		SELECT e.id, e.partner_id, e.points, e.issue_price_micros AS ip,
			e.redeem_price_micros AS rp, e.type = 'reverse' AS rev,
			CASE WHEN e.type = 'reverse' THEN o.type ELSE e.type END AS base
		FROM entries e LEFT JOIN entries o ON o.id = e.reverses_entry
		WHERE e.period = p_label AND e.kind = 'message'
	), msg AS (
		SELECT pe.partner_id,
			sum(pe.points) FILTER (WHERE base = 'issue' AND NOT rev) AS ip_pts,
			sum(pe.points) FILTER (WHERE base = 'issue' AND rev) AS ir_pts,
			sum(pe.points) FILTER (WHERE base = 'redeem' AND NOT rev) AS rd_pts,
			sum(pe.points) FILTER (WHERE base = 'redeem' AND rev) AS rr_pts,
			sum(pe.points::numeric * pe.ip) FILTER (WHERE base = 'issue' AND NOT rev) AS ip_m,
			sum(pe.points::numeric * pe.ip) FILTER (WHERE base = 'issue' AND rev) AS ir_m,
			sum(pe.points::numeric * pe.rp) FILTER (WHERE base = 'redeem' AND NOT rev) AS rd_m,
			sum(pe.points::numeric * pe.rp) FILTER (WHERE base = 'redeem' AND rev) AS rr_m
		FROM pe GROUP BY pe.partner_id
	), fee AS (
		SELECT l.partner_id, sum((-m.points)::numeric * coalesce(m.fee_micros, 0)) AS fee_m
		FROM pe JOIN lot_moves m ON m.entry_id = pe.id JOIN lots l ON l.id = m.lot_id
		WHERE pe.base = 'redeem' GROUP BY l.partner_id
	), exp AS (
		SELECT l.partner_id, sum(-m.points) AS ex_pts
		FROM entries e JOIN lot_moves m ON m.entry_id = e.id JOIN lots l ON l.id = m.lot_id
		WHERE e.period = p_label AND e.kind = 'expiry' GROUP BY l.partner_id
	), who AS (
		SELECT msg.partner_id FROM msg UNION SELECT fee.partner_id FROM fee
		UNION SELECT exp.partner_id FROM exp
	)
	SELECT w.partner_id, coalesce(ip_pts, 0)::bigint, coalesce(ir_pts, 0)::bigint,
		coalesce(rd_pts, 0)::bigint, coalesce(rr_pts, 0)::bigint, coalesce(ex_pts, 0)::bigint,
		coalesce(ip_m, 0), coalesce(ir_m, 0), coalesce(rd_m, 0), coalesce(rr_m, 0),
		coalesce(fee_m, 0)
	FROM who w LEFT JOIN msg ON msg.partner_id = w.partner_id
	LEFT JOIN fee ON fee.partner_id = w.partner_id
	LEFT JOIN exp ON exp.partner_id = w.partner_id
$$;

-- Fills interchange and batch_lines of batch p_id.
CREATE FUNCTION settle_write_lines(p_id bigint, p_label text, p_model text, p_exp int)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_bad bigint;
BEGIN
	SELECT e.id INTO v_bad FROM entries e LEFT JOIN entries o ON o.id = e.reverses_entry
	WHERE e.period = p_label AND e.kind = 'message'
	  AND CASE WHEN coalesce(o.type, e.type) = 'issue' THEN e.issue_price_micros
		ELSE e.redeem_price_micros END IS NULL
	LIMIT 1;
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION 'entry % has no price: no rate card was in force', v_bad USING ERRCODE = 'PT004';
	END IF;
	INSERT INTO interchange (batch_id, issuer, redeemer, points, amount_micros, amount_minor)
	SELECT p_id, l.partner_id, e.partner_id, sum(-m.points),
		sum((-m.points)::numeric * e.redeem_price_micros),
		CASE WHEN p_model = 'prepaid' THEN NULL WHEN l.partner_id = e.partner_id THEN 0
			ELSE round_half_even_micros(sum((-m.points)::numeric * e.redeem_price_micros), p_exp) END
	FROM entries e LEFT JOIN entries o ON o.id = e.reverses_entry
	JOIN lot_moves m ON m.entry_id = e.id JOIN lots l ON l.id = m.lot_id
	WHERE e.period = p_label AND e.kind = 'message' AND coalesce(o.type, e.type) = 'redeem'
	GROUP BY l.partner_id, e.partner_id;

	INSERT INTO batch_lines
	SELECT p_id, x.partner_id, x.ip, x.irp, x.rp, x.rrp, x.ep, x.a, x.b, x.c, x.d, x.f, x.g, x.h,
		x.a + x.b + x.c + x.d + x.f + x.g + x.h,
		CASE sign(x.a + x.b + x.c + x.d + x.f + x.g + x.h) WHEN 1 THEN 'pay' WHEN -1 THEN 'receive' ELSE 'none' END
	FROM (SELECT s.partner_id, s.issued_points AS ip, s.issue_reversed_points AS irp,
		s.redeemed_points AS rp, s.redeem_reversed_points AS rrp, s.expired_points AS ep,
		CASE WHEN p_model = 'prepaid' THEN round_half_even_micros(s.issued_micros, p_exp) ELSE 0 END AS a,
		CASE WHEN p_model = 'prepaid' THEN -round_half_even_micros(s.issue_reversed_micros, p_exp) ELSE 0 END AS b,
		CASE WHEN p_model = 'prepaid' THEN -round_half_even_micros(s.redeemed_micros, p_exp) ELSE 0 END AS c,
		CASE WHEN p_model = 'prepaid' THEN round_half_even_micros(s.redeem_reversed_micros, p_exp) ELSE 0 END AS d,
		CASE WHEN p_model = 'on_redemption' THEN round_half_even_micros(s.fees_micros, p_exp) ELSE 0 END AS f,
		coalesce((SELECT sum(i.amount_minor) FROM interchange i WHERE i.batch_id = p_id
			AND i.issuer = s.partner_id AND i.redeemer <> s.partner_id), 0)::bigint AS g,
		-coalesce((SELECT sum(i.amount_minor) FROM interchange i WHERE i.batch_id = p_id
			AND i.redeemer = s.partner_id AND i.issuer <> s.partner_id), 0)::bigint AS h
		FROM settle_period_sums(p_label) s) x;
END
$$;

-- Payments and the money journal of batch p_id, then the balance asserts.
CREATE FUNCTION settle_write_journal(p_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_bad text;
BEGIN
	INSERT INTO payments (batch_id, partner_id, direction, amount_minor)
	SELECT p_id, l.partner_id, l.direction, abs(l.net_minor)
	FROM batch_lines l WHERE l.batch_id = p_id AND l.net_minor <> 0;

	INSERT INTO money_journal (batch_id, seq, item, debit, credit, amount_minor)
	SELECT p_id, row_number() OVER (ORDER BY j.grp, j.who COLLATE "C", j.ord, j.other COLLATE "C"),
		j.item,
		CASE WHEN j.amt > 0 THEN j.dr ELSE j.cr END,
		CASE WHEN j.amt > 0 THEN j.cr ELSE j.dr END,
		abs(j.amt)
	FROM (
		SELECT 1 AS grp, l.partner_id AS who, v.ord, '' AS other, v.item,
			'partner:' || l.partner_id AS dr, v.acct AS cr, v.amt
		FROM batch_lines l, LATERAL (VALUES
			(1, 'issued', 'operator:float', l.issued_minor),
			(2, 'issue_reversed', 'operator:float', l.issue_reversed_minor),
			(3, 'redeemed', 'operator:float', l.redeemed_minor),
			(4, 'redeem_reversed', 'operator:float', l.redeem_reversed_minor),
			(5, 'fees', 'operator:fees', l.fees_minor)) AS v(ord, item, acct, amt)
		WHERE l.batch_id = p_id
		UNION ALL
		SELECT 2, i.issuer, 0, i.redeemer, 'interchange',
			'partner:' || i.issuer, 'partner:' || i.redeemer, i.amount_minor
		FROM interchange i WHERE i.batch_id = p_id AND i.issuer <> i.redeemer
		UNION ALL
		SELECT 3, p.partner_id, 0, '', 'payment', 'settlement:bank', 'partner:' || p.partner_id,
			CASE WHEN p.direction = 'pay' THEN p.amount_minor ELSE -p.amount_minor END
		FROM payments p WHERE p.batch_id = p_id
	) j WHERE j.amt IS NOT NULL AND j.amt <> 0;

	-- after the payments every partner account is settled to zero
	SELECT a.acct INTO v_bad FROM (
		SELECT debit AS acct, amount_minor AS bal FROM money_journal WHERE batch_id = p_id
		UNION ALL SELECT credit, -amount_minor FROM money_journal WHERE batch_id = p_id) a
	WHERE a.acct LIKE 'partner:%' GROUP BY a.acct HAVING sum(a.bal) <> 0 LIMIT 1;
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION 'assert: money journal leaves % unsettled in batch %', v_bad, p_id;
	END IF;
END
$$;

-- The batch document: canonical JSON of everything in the batch.
CREATE FUNCTION settle_document(p_id bigint, p_label text, p_model text, p_cur text,
	p_exp int, p_at timestamptz, p_operator bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object('version', 1, 'batch', p_id, 'period', p_label,
		'starts_at', to_char(p.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'ends_at', to_char(p.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'timezone', p.timezone, 'cycle', p.cycle,
		'model', p_model, 'currency', p_cur, 'exponent', p_exp,
		'created_at', to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'lines', coalesce((SELECT jsonb_agg(jsonb_build_object('partner', l.partner_id,
			'points', jsonb_build_object('issued', l.issued_points,
				'issue_reversed', l.issue_reversed_points, 'redeemed', l.redeemed_points,
				'redeem_reversed', l.redeem_reversed_points, 'expired', l.expired_points),
			'items_minor', jsonb_build_object('issued', l.issued_minor,
				'issue_reversed', l.issue_reversed_minor, 'redeemed', l.redeemed_minor,
				'redeem_reversed', l.redeem_reversed_minor, 'fees', l.fees_minor,
				'interchange_payable', l.interchange_payable_minor,
				'interchange_receivable', l.interchange_receivable_minor),
			'net_minor', l.net_minor, 'net', money_format_minor(l.net_minor, p_exp),
			'direction', l.direction) ORDER BY l.partner_id COLLATE "C")
			FROM batch_lines l WHERE l.batch_id = p_id), '[]'::jsonb),
		'operator', jsonb_build_object('net_minor', p_operator,
			'keeps_minor', -p_operator, 'keeps', money_format_minor(-p_operator, p_exp)),
		'interchange', coalesce((SELECT jsonb_agg(jsonb_build_object('issuer', i.issuer,
			'redeemer', i.redeemer, 'points', i.points, 'amount_micros', i.amount_micros::text,
			'amount_minor', i.amount_minor)
			ORDER BY i.issuer COLLATE "C", i.redeemer COLLATE "C")
			FROM interchange i WHERE i.batch_id = p_id), '[]'::jsonb),
		'payments', coalesce((SELECT jsonb_agg(jsonb_build_object('partner', y.partner_id,
			'direction', y.direction, 'amount_minor', y.amount_minor,
			'amount', money_format_minor(y.amount_minor, p_exp), 'account', y.account)
			ORDER BY y.partner_id COLLATE "C")
			FROM payments y WHERE y.batch_id = p_id), '[]'::jsonb),
		'journal', coalesce((SELECT jsonb_agg(jsonb_build_object('seq', j.seq, 'item', j.item,
			'debit', j.debit, 'credit', j.credit, 'amount_minor', j.amount_minor) ORDER BY j.seq)
			FROM money_journal j WHERE j.batch_id = p_id), '[]'::jsonb))
	FROM periods p WHERE p.label = p_label
$$;

-- The batch of a closed period: written once, then only read. Returns the
-- batch id (the stored one if the period is already settled). Raises
-- PT002 no such period, PT001 period not closed, PT003 an earlier period
-- is not settled (seals chain in period order), PT004 an unpriced entry.
CREATE FUNCTION settle_batch(p_label text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_id   bigint;
	v_p    record;
	v_set  settings%ROWTYPE;
	v_prev text;
	v_op   bigint;
	v_at   timestamptz := clock_timestamp();
	v_doc  text;
BEGIN
	PERFORM pg_advisory_xact_lock(settle_lock_key());
	SELECT b.id INTO v_id FROM settlement_batches b WHERE b.period = p_label;
	IF v_id IS NOT NULL THEN
		RETURN v_id;
	END IF;
	SELECT * INTO v_p FROM periods p WHERE p.label = p_label;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no period %', p_label USING ERRCODE = 'PT002';
	END IF;
	IF v_p.status <> 'closed' THEN
		RAISE EXCEPTION 'period % is not closed', p_label USING ERRCODE = 'PT001';
	END IF;
	SELECT p.label INTO v_prev FROM periods p
	WHERE p.starts_at < v_p.starts_at
	  AND NOT EXISTS (SELECT 1 FROM settlement_batches b WHERE b.period = p.label)
	ORDER BY p.starts_at LIMIT 1;
	IF v_prev IS NOT NULL THEN
		RAISE EXCEPTION 'the earlier period % is not settled yet', v_prev USING ERRCODE = 'PT003';
	END IF;
	SELECT * INTO v_set FROM settings;
	v_id := nextval(pg_get_serial_sequence('settlement_batches', 'id'));
	PERFORM settle_write_lines(v_id, p_label, v_set.model, v_set.currency_exponent);
	PERFORM settle_write_journal(v_id);
	SELECT -coalesce(sum(l.net_minor), 0) INTO v_op FROM batch_lines l WHERE l.batch_id = v_id;
	v_doc := canonical_json(settle_document(v_id, p_label, v_set.model, v_set.currency,
		v_set.currency_exponent, v_at, v_op));
	INSERT INTO settlement_batches (id, period, model, currency, exponent, created_at,
		operator_net_minor, document, sha256)
	VALUES (v_id, p_label, v_set.model, v_set.currency, v_set.currency_exponent, v_at, v_op,
		v_doc, encode(sha256(convert_to(v_doc, 'UTF8')), 'hex'));
	RETURN v_id;
END
$$;

-- ---------------------------------------------------------------- reads

-- GET /v1/settlements: this partner's statements, newest first.
CREATE FUNCTION partner_settlements(p_partner text) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT coalesce(json_agg(json_build_object('batch', b.id, 'period', b.period,
		'model', b.model, 'currency', b.currency, 'exponent', b.exponent,
		'created_at', to_char(b.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'net_minor', l.net_minor, 'net', money_format_minor(l.net_minor, b.exponent),
		'direction', l.direction) ORDER BY p.starts_at DESC, b.id DESC), '[]'::json)
	FROM batch_lines l JOIN settlement_batches b ON b.id = l.batch_id
	JOIN periods p ON p.label = b.period
	WHERE l.partner_id = p_partner
$$;

-- GET /v1/settlements/{batch}: this partner's line of one batch, with its
-- interchange pairs and payment; NULL if it has none (never another's).
CREATE FUNCTION partner_settlement(p_partner text, p_batch bigint) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('batch', b.id, 'period', b.period, 'model', b.model,
		'currency', b.currency, 'exponent', b.exponent, 'batch_sha256', b.sha256,
		'line', (SELECT x FROM jsonb_array_elements(b.document::jsonb -> 'lines') x
			WHERE x ->> 'partner' = p_partner),
		'interchange', coalesce((SELECT jsonb_agg(x) FROM jsonb_array_elements(b.document::jsonb -> 'interchange') x
			WHERE x ->> 'issuer' = p_partner OR x ->> 'redeemer' = p_partner), '[]'::jsonb),
		'payment', (SELECT x FROM jsonb_array_elements(b.document::jsonb -> 'payments') x
			WHERE x ->> 'partner' = p_partner))
	FROM settlement_batches b
	WHERE b.id = p_batch AND EXISTS (SELECT 1 FROM batch_lines l
		WHERE l.batch_id = b.id AND l.partner_id = p_partner)
$$;

-- ---------------------------------------------------------------- rights

GRANT SELECT ON currencies, settlement_batches, batch_lines, interchange, payments,
	money_journal, period_seals TO pointsd;
GRANT INSERT ON settlement_batches, batch_lines, interchange, payments, money_journal,
	period_seals TO pointsd;
GRANT USAGE ON SEQUENCE settlement_batches_id_seq TO pointsd;
GRANT EXECUTE ON FUNCTION
	round_half_even_micros(numeric, int), money_format_minor(bigint, int),
	canonical_json(jsonb), settle_lock_key(), settle_close_period(text),
	settle_period_sums(text), settle_write_lines(bigint, text, text, int),
	settle_write_journal(bigint),
	settle_document(bigint, text, text, text, int, timestamptz, bigint),
	settle_batch(text), partner_settlements(text), partner_settlement(text, bigint)
TO pointsd;
