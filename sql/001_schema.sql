-- 001_schema.sql - tables of the points ledger, the partner registry and
-- settlement. Applied by `pointsctl init` inside one transaction.
-- Amounts: points are bigint; prices are integer micro-units (10^-6 of the
-- settlement currency) per point; money totals are numeric, never float.

-- The server's own role: it posts, it never rewrites history.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pointsd') THEN
		CREATE ROLE pointsd LOGIN;
	END IF;
END
$$;

-- One row: the program's settings (settlement.md §1-§3).
CREATE TABLE settings (
	id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
	currency            char(3) NOT NULL DEFAULT 'CNY' CHECK (currency ~ '^[A-Z]{3}$'),
	currency_exponent   int NOT NULL DEFAULT 2 CHECK (currency_exponent BETWEEN 0 AND 4),
	model               text NOT NULL DEFAULT 'prepaid'
	                    CHECK (model IN ('prepaid', 'on_redemption')),
	cycle               text NOT NULL DEFAULT 'daily'
	                    CHECK (cycle IN ('daily', 'weekly', 'monthly')),
	timezone            text NOT NULL DEFAULT 'UTC',
	grace_seconds       int NOT NULL DEFAULT 3600 CHECK (grace_seconds >= 0),
	validity_rule       text NOT NULL DEFAULT 'months'
	                    CHECK (validity_rule IN ('months', 'calendar_year')),
	validity_n          int NOT NULL DEFAULT 24 CHECK (validity_n BETWEEN 1 AND 100)
);
INSERT INTO settings DEFAULT VALUES;

-- Partner registry (protocol.md §1).
CREATE TABLE partners (
	id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	status      text NOT NULL DEFAULT 'pending'
	            CHECK (status IN ('pending', 'active', 'suspended')),
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- TLS client certificates by SHA-256 fingerprint (lower-case hex, no colons).
CREATE TABLE partner_certs (
	fingerprint text PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
	partner_id  text NOT NULL REFERENCES partners (id),
	subject     text NOT NULL,
	not_after   timestamptz,
	added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_certs_partner ON partner_certs (partner_id);

-- Partner message-signing keys (JWS). kid is unique across the program.
CREATE TABLE signing_keys (
	kid         text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9._:-]{1,128}$'),
	partner_id  text NOT NULL REFERENCES partners (id),
	alg         text NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
	public_pem  text NOT NULL,
	valid_from  timestamptz NOT NULL DEFAULT now(),
	valid_until timestamptz,
	revoked_at  timestamptz,
	created_at  timestamptz NOT NULL DEFAULT now(),
	CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX signing_keys_partner ON signing_keys (partner_id);

-- The server's receipt keys: never deleted, only retired (ledger.md §5).
CREATE TABLE receipt_keys (
	kid         text PRIMARY KEY,
	public_pem  text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	retired_at  timestamptz
);

-- Effective-dated rate cards, integer micro-units per point (settlement.md §1).
CREATE TABLE rate_cards (
	id                  bigserial PRIMARY KEY,
	partner_id          text NOT NULL REFERENCES partners (id),
	issue_price_micros  bigint NOT NULL CHECK (issue_price_micros BETWEEN 0 AND 1000000000),
	redeem_price_micros bigint NOT NULL CHECK (redeem_price_micros BETWEEN 0 AND 1000000000),
	clearing_fee_micros bigint NOT NULL DEFAULT 0
	                    CHECK (clearing_fee_micros BETWEEN 0 AND 1000000000),
	effective_from      timestamptz NOT NULL,
	created_at          timestamptz NOT NULL DEFAULT now(),
	UNIQUE (partner_id, effective_from)
);

-- Point accounts (ledger.md §1). debits_posted/credits_posted are kept for
-- member accounts only; partner and breakage balances are derived from
-- transfers (no hot rows, ledger.md §4).
CREATE TABLE accounts (
	id              bigserial PRIMARY KEY,
	name            text NOT NULL UNIQUE,
	kind            text NOT NULL CHECK (kind IN ('issued', 'member', 'redeemed', 'breakage')),
	partner_id      text REFERENCES partners (id),
	member          text,
	debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
	credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
	created_at      timestamptz NOT NULL DEFAULT now(),
	CHECK (kind <> 'member' OR credits_posted >= debits_posted),
	CHECK (kind = 'member' OR (debits_posted = 0 AND credits_posted = 0)),
	CHECK ((kind = 'member') = (member IS NOT NULL)),
	CHECK ((kind IN ('issued', 'redeemed')) = (partner_id IS NOT NULL))
);
CREATE UNIQUE INDEX accounts_member ON accounts (member) WHERE kind = 'member';
INSERT INTO accounts (name, kind) VALUES ('breakage', 'breakage');

-- Settlement periods. A row is created by pointsd about a minute before the
-- period starts (sql/006), or else when the first entry of the period is
-- stamped, from the settings in force then (changes apply to the next period).
CREATE TABLE periods (
	label       text PRIMARY KEY,
	cycle       text NOT NULL,
	timezone    text NOT NULL,
	starts_at   timestamptz NOT NULL UNIQUE,
	ends_at     timestamptz NOT NULL,
	status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
	closed_at   timestamptz,
	CHECK (ends_at > starts_at),
	EXCLUDE USING gist (tstzrange(starts_at, ends_at) WITH &&)
);

-- The hot tables below (entries, transfers, lots, lot_moves, messages,
-- receipts) declare no FOREIGN KEY: each would cost a lookup of the key per
-- inserted row, ~30% of the database's work per posted message
-- (bench/sql_post_group.sh: 312 -> 217 us per message without them). They
-- are written only by the posting, expiry and settlement functions, which
-- take every key from rows they have just read or written, and
-- `pointsctl reconcile` (invariant 6, sql/004) checks every reference of
-- every row: "-> table" in a comment names the row a column points at.

-- Journal entries: one per accepted message, expiry line or adjustment.
CREATE TABLE entries (
	id                  bigint PRIMARY KEY,
	kind                text NOT NULL CHECK (kind IN ('message', 'expiry', 'adjustment')),
	accepted_at         timestamptz NOT NULL,
	period              text NOT NULL,          -- -> periods (label)
	partner_id          text,                   -- -> partners
	msg_id              text,
	type                text CHECK (type IN ('issue', 'redeem', 'reverse')),
	member              text,
	points              bigint NOT NULL CHECK (points > 0),
	reverses_entry      bigint,                 -- -> entries
	-- prices applied at posting (settlement.md §1); a reverse copies its original's
	issue_price_micros  bigint,
	redeem_price_micros bigint,
	CHECK ((kind = 'message') = (partner_id IS NOT NULL AND msg_id IS NOT NULL AND type IS NOT NULL))
);
CREATE SEQUENCE entries_id_seq OWNED BY entries.id;
ALTER TABLE entries ALTER COLUMN id SET DEFAULT nextval('entries_id_seq');
CREATE INDEX entries_period ON entries (period, id);
CREATE INDEX entries_accepted ON entries (accepted_at);

-- Transfers: a positive number of points from a debit to a credit account.
CREATE TABLE transfers (
	id              bigserial PRIMARY KEY,
	entry_id        bigint NOT NULL,    -- -> entries
	debit_account   bigint NOT NULL,    -- -> accounts
	credit_account  bigint NOT NULL,    -- -> accounts
	points          bigint NOT NULL CHECK (points > 0),
	CHECK (debit_account <> credit_account)
);
CREATE INDEX transfers_entry ON transfers (entry_id);
CREATE INDEX transfers_debit ON transfers (debit_account);
CREATE INDEX transfers_credit ON transfers (credit_account);

-- Lots: where each point came from (ledger.md §2).
CREATE TABLE lots (
	id          bigserial PRIMARY KEY,
	account_id  bigint NOT NULL,            -- -> accounts
	member      text NOT NULL,
	partner_id  text NOT NULL,              -- -> partners
	entry_id    bigint NOT NULL UNIQUE,     -- -> entries
	points      bigint NOT NULL CHECK (points > 0),
	remaining   bigint NOT NULL CHECK (remaining >= 0 AND remaining <= points),
	issued_at   timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	CHECK (expires_at > issued_at)
);
CREATE INDEX lots_member_open ON lots (member, expires_at, entry_id) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0;

-- Every change to a lot's remaining points, signed: issue +N, redeem -n per
-- consumed lot, reverse of a redeem +n, reverse of an issue -n, expiry -rest.
-- fee_micros: on a redeem (and its reversal) the clearing fee of the lot's
-- issuer in force at the redemption.
CREATE TABLE lot_moves (
	entry_id    bigint NOT NULL,            -- -> entries
	seq         int NOT NULL CHECK (seq >= 1),
	lot_id      bigint NOT NULL,            -- -> lots
	points      bigint NOT NULL CHECK (points <> 0),
	fee_micros  bigint,
	PRIMARY KEY (entry_id, seq)
);
CREATE INDEX lot_moves_lot ON lot_moves (lot_id);

-- Accepted partner messages: raw JWS bytes and the stored reply (protocol.md §4).
CREATE TABLE messages (
	partner_id      text NOT NULL,          -- -> partners
	msg_id          text NOT NULL,
	entry_id        bigint NOT NULL UNIQUE, -- -> entries
	jws             text NOT NULL,
	-- lower-case hex; translate() rather than a regex: this row is hot
	sha256          text NOT NULL CHECK (length(sha256) = 64
	                AND translate(sha256, '0123456789abcdef', '') = ''),
	kid             text NOT NULL,
	type            text NOT NULL CHECK (type IN ('issue', 'redeem', 'reverse')),
	member          text NOT NULL,
	points          bigint NOT NULL CHECK (points > 0),
	reverses        text,
	reversed_points bigint NOT NULL DEFAULT 0 CHECK (reversed_points >= 0 AND reversed_points <= points),
	balance         bigint NOT NULL,
	accepted_at     timestamptz NOT NULL,
	period          text NOT NULL,
	PRIMARY KEY (partner_id, msg_id)
);

-- Receipts, one per message entry, written in the posting transaction.
CREATE TABLE receipts (
	entry_id    bigint PRIMARY KEY,         -- -> messages (entry_id)
	kid         text NOT NULL,              -- -> receipt_keys
	receipt     text NOT NULL
);

-- Append-only (ledger.md §1.5): refuse UPDATE, DELETE and TRUNCATE for everyone,
-- superusers included (a superuser can drop the trigger; that is a schema
-- change, visible in the catalog, not a silent edit).
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'append_only: % on % is refused', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Both triggers of an append-only table, named <table>_append_only and
-- <table>_no_truncate (reconcile's invariant 5 looks for them).
CREATE FUNCTION make_append_only(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_name text := (SELECT c.relname FROM pg_class c WHERE c.oid = p_table);
BEGIN
	EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %s '
		'FOR EACH ROW EXECUTE FUNCTION refuse_change()', v_name || '_append_only', p_table);
	EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s '
		'FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', v_name || '_no_truncate', p_table);
END
$$;

SELECT make_append_only(t) FROM unnest('{entries,transfers,lot_moves,receipts}'::regclass[]) AS t;

-- messages: only reversed_points may change; the bytes never do.
CREATE FUNCTION messages_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP <> 'UPDATE' OR NEW.jws IS DISTINCT FROM OLD.jws
	    OR NEW.sha256 IS DISTINCT FROM OLD.sha256
	    OR NEW.entry_id IS DISTINCT FROM OLD.entry_id
	    OR NEW.partner_id IS DISTINCT FROM OLD.partner_id
	    OR NEW.msg_id IS DISTINCT FROM OLD.msg_id
	    OR NEW.points IS DISTINCT FROM OLD.points
	    OR NEW.balance IS DISTINCT FROM OLD.balance THEN
		RAISE EXCEPTION 'append_only: % on messages is refused', TG_OP
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER messages_guard BEFORE UPDATE OR DELETE ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_guard();
CREATE TRIGGER messages_no_truncate BEFORE TRUNCATE ON messages
	FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Rights of the server role: read the registry, post, never rewrite.
GRANT USAGE ON SCHEMA public TO pointsd;
GRANT SELECT ON settings, partners, partner_certs, signing_keys, rate_cards TO pointsd;
GRANT SELECT, INSERT ON receipt_keys TO pointsd;
GRANT SELECT, INSERT ON entries, transfers, lot_moves, receipts TO pointsd;
GRANT SELECT, INSERT, UPDATE ON accounts, lots, messages, periods TO pointsd;
GRANT USAGE ON SEQUENCE entries_id_seq, transfers_id_seq, lots_id_seq, accounts_id_seq TO pointsd;
