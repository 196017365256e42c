-- 006_rows_ahead.sql - the rows that every posting of a partner or of a
-- period shares are created ahead of the postings, not by the first of them.
-- Applied after 005 by `pointsctl init`, in one transaction.
--
-- Why. pointsd posts two groups side by side on two connections when they
-- share no member and no id (clearing/writer.c), and answers them in order.
-- If both groups had to create the same row - the issued:/redeemed: account
-- of a partner's first posting, or the periods row of a new period - the
-- newer group could create it first; the older one then waited on the
-- newer's COMMIT, which the writer sends only after reading the older group:
-- a stall until the statement timeout (~2 s), then a retry. With the rows
-- made beforehand, two groups only ever read them.
--   * a partner's two accounts are created with the partner (trigger below;
--     ledger_partner_account() still creates them if they are missing);
--   * pointsd's control thread calls period_row_for(now() + 60 s) every ten
--     seconds, so the next period's row exists about a minute before its
--     first posting (clearing/control.c). It uses the settings in force
--     then, as the first posting of the period would have.

CREATE FUNCTION partners_create_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO accounts (name, kind, partner_id)
	VALUES ('issued:' || NEW.id, 'issued', NEW.id), ('redeemed:' || NEW.id, 'redeemed', NEW.id)
	ON CONFLICT DO NOTHING;
	RETURN NULL;
END
$$;
CREATE TRIGGER partners_accounts AFTER INSERT ON partners
	FOR EACH ROW EXECUTE FUNCTION partners_create_accounts();

INSERT INTO accounts (name, kind, partner_id)
SELECT k || ':' || p.id, k, p.id
FROM partners p CROSS JOIN unnest('{issued,redeemed}'::text[]) AS k
ORDER BY p.id, k
ON CONFLICT DO NOTHING;
