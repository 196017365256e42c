/* cmd_key.c - `pointsctl key`: add, revoke, list partner message-signing keys.
 * Owns: signing_keys rows. Never stores a key that keycheck refused (wrong
 * type, off-curve, small-order); every change NOTIFYs pointsd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "clearing/jws.h"
#include "partners/keycheck.h"
#include "ctl.h"
#include "db.h"
#include "errors.h"
#include "pts_limits.h"

const char ctl_sql_key_list[] =
    "SELECT kid, alg, "
    "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
    "WHEN valid_until IS NOT NULL AND valid_until <= now() THEN 'expired' "
    "WHEN valid_from > now() THEN 'not_yet_valid' ELSE 'active' END AS state, "
    "to_json(valid_from) #>> '{}' AS valid_from, "
    "to_json(valid_until) #>> '{}' AS valid_until, "
    "to_json(revoked_at) #>> '{}' AS revoked_at "
    "FROM signing_keys WHERE partner_id = $1 ORDER BY created_at, kid";

static const char key_usage[] =
    "usage: pointsctl key COMMAND ...\n"
    "\n"
    "  add PARTNER --kid KID --public-key FILE [--valid-from T] [--valid-until T]\n"
    "                       register a signing key (Ed25519 or P-256 PEM)\n"
    "  revoke KID           messages signed with it are refused from now on\n"
    "  list PARTNER [--json]\n";
static const char key_add_usage[] =
    "usage: pointsctl key add PARTNER --kid KID --public-key FILE "
    "[--valid-from T] [--valid-until T]\n"
    "\n"
    "Registers the public key FILE (PEM SubjectPublicKeyInfo, Ed25519 or P-256)\n"
    "under KID (1..128 of [A-Za-z0-9._:-], unique in the program). The JWS alg\n"
    "(EdDSA or ES256) is taken from the key. T is any PostgreSQL timestamptz;\n"
    "valid from now by default, without end by default.\n";
static const char key_revoke_usage[] =
    "usage: pointsctl key revoke KID\n"
    "\n"
    "Revokes the key now; messages already posted stay valid.\n";
static const char key_list_usage[] =
    "usage: pointsctl key list PARTNER [--json]\n";

/* the key in canonical SubjectPublicKeyInfo PEM, malloc'd, or NULL */
static char *
key_public_pem(EVP_PKEY *pkey)
{
	BIO *bio = NULL;
	char *data = NULL, *pem = NULL;
	long len;

	ERR_clear_error();
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_PUBKEY(bio, pkey) != 1)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		goto out;
	pem = malloc((size_t)len + 1);
	if (pem == NULL)
		goto out;
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
out:
	BIO_free(bio);
	return pem;
}

/* reads and checks FILE; CTL_CONTINUE with *pem_out and *alg_out set */
static int
key_load(const char *path, char **pem_out, enum jws_alg *alg_out)
{
	char *text = NULL, q[96];
	const char *reason = NULL;
	EVP_PKEY *pkey = NULL;
	size_t len = 0;
	int st = CTL_EXIT_INPUT;

	if (ctl_read_file(path, CTL_FILE_BYTES_MAX, &text, &len, &reason) != C_OK)
		return ctl_fail(CTL_EXIT_INPUT, "key_add: %s: %s", reason,
		    ctl_quote(path, q, sizeof(q)));
	if (keycheck_load_public_pem(text, len, &pkey, alg_out, &reason) != C_OK) {
		ctl_fail(st, "key_add: refused key: %s",
		    reason != NULL ? reason : "not a usable public key");
		goto out;
	}
	*pem_out = key_public_pem(pkey);
	if (*pem_out == NULL) {
		ctl_fail(st, "key_add: cannot encode the public key");
		goto out;
	}
	st = CTL_CONTINUE;
out:
	EVP_PKEY_free(pkey);
	free(text);
	return st;
}

/* the reason an INSERT into signing_keys failed */
static int
key_add_fail(struct ctl *c, const char *kid, const struct db_err *e)
{
	char q[160];

	if (db_err_is(e, "23505")) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "key_add: kid %s is already "
		    "registered", ctl_quote(kid, q, sizeof(q)));
	}
	if (db_err_is(e, "23503")) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "key_add: unknown partner");
	}
	if (db_err_is(e, "23514")) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "key_add: --valid-until must be "
		    "after --valid-from");
	}
	if (strncmp(e->sqlstate, "22", 2) == 0) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "key_add: bad timestamp: %s",
		    e->msg);
	}
	return ctl_db_fail(c, "key_add", e);
}

static int
key_add_store(struct ctl *c, const char *const params[6])
{
	PGresult *res;
	struct db_err e;
	char q[96];
	int st;

	if (db_begin(c->db) != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	res = db_query(c->db, "SELECT 1 FROM partners WHERE id = $1 FOR SHARE",
	    1, params + 1, &e);
	if (res == NULL)
		return ctl_db_fail(c, "key_add", &e);
	st = PQntuples(res) > 0 ? CTL_CONTINUE : CTL_EXIT_INPUT;
	PQclear(res);
	if (st != CTL_CONTINUE) {
		db_rollback(c->db);
		return ctl_fail(st, "key_add: unknown partner %s",
		    ctl_quote(params[1], q, sizeof(q)));
	}
	res = db_query(c->db, "INSERT INTO signing_keys (kid, partner_id, alg, "
	    "public_pem, valid_from, valid_until) VALUES ($1, $2, $3, $4, "
	    "coalesce($5::timestamptz, now()), $6::timestamptz) "
	    "RETURNING to_json(valid_from) #>> '{}'", 6, params, &e);
	if (res == NULL)
		return key_add_fail(c, params[0], &e);
	st = ctl_registry_commit(c, "key_add");
	if (st == CTL_EXIT_OK)
		printf("key %s (%s) added for %s, valid from %s\n", params[0],
		    params[2], params[1], PQgetvalue(res, 0, 0));
	PQclear(res);
	return st;
}

static int
key_add(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "kid", required_argument, NULL, 'k' },
		{ "public-key", required_argument, NULL, 'p' },
		{ "valid-from", required_argument, NULL, 'f' },
		{ "valid-until", required_argument, NULL, 'u' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	/* kid, partner, alg, pem, valid_from, valid_until */
	const char *params[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
	const char *path = NULL;
	enum jws_alg alg = JWS_ALG_UNKNOWN;
	char *pem = NULL, q[160];
	int st;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hk:p:f:u:", opts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'k': params[0] = optarg; continue;
		case 'p': path = optarg; continue;
		case 'f': params[4] = optarg; continue;
		case 'u': params[5] = optarg; continue;
		default: break;
		}
		st = ctl_option(c, ch, argv, key_add_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 1, 1, key_add_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (params[0] == NULL || path == NULL)
		return ctl_usage_fail(key_add_usage, params[0] == NULL ?
		    "missing --kid" : "missing --public-key");
	params[1] = argv[optind];
	if (!ctl_valid_name(params[0], LIMIT_KID_CHARS, "._:-"))
		return ctl_fail(CTL_EXIT_INPUT, "key_add: bad kid %s: 1..128 "
		    "characters of [A-Za-z0-9._:-]", ctl_quote(params[0], q,
		    sizeof(q)));
	st = key_load(path, &pem, &alg);
	if (st != CTL_CONTINUE)
		return st;
	params[2] = jws_alg_name(alg);
	params[3] = pem;
	st = ctl_db(c) == C_OK ? key_add_store(c, params) : CTL_EXIT_DB;
	free(pem);
	return st;
}

static int
key_revoke(int argc, char **argv, struct ctl *c)
{
	const char *params[1];
	PGresult *res;
	struct db_err e;
	char q[160];
	int st;

	st = ctl_parse_plain(argc, argv, c, key_revoke_usage, 1, 1);
	if (st != CTL_CONTINUE)
		return st;
	params[0] = argv[optind];
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	if (db_begin(c->db) != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	res = db_query(c->db, "SELECT revoked_at IS NOT NULL, partner_id "
	    "FROM signing_keys WHERE kid = $1 FOR UPDATE", 1, params, &e);
	if (res == NULL)
		return ctl_db_fail(c, "key_revoke", &e);
	if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't') {
		st = ctl_fail(CTL_EXIT_INPUT, "key_revoke: kid %s %s",
		    ctl_quote(params[0], q, sizeof(q)), PQntuples(res) == 0 ?
		    "is not registered" : "is already revoked");
		PQclear(res);
		db_rollback(c->db);
		return st;
	}
	snprintf(q, sizeof(q), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if (db_command(c->db, "UPDATE signing_keys SET revoked_at = now() "
	    "WHERE kid = $1", 1, params, &e) != C_OK)
		return ctl_db_fail(c, "key_revoke", &e);
	st = ctl_registry_commit(c, "key_revoke");
	if (st == CTL_EXIT_OK)
		printf("key %s of %s revoked\n", params[0], q);
	return st;
}

static int
key_list(int argc, char **argv, struct ctl *c)
{
	return ctl_list_for_partner(argc, argv, c, key_list_usage, "key_list",
	    ctl_sql_key_list);
}

int
cmd_key(int argc, char **argv, struct ctl *c)
{
	static const struct ctl_sub subs[] = {
		{ "add", key_add, key_add_usage },
		{ "revoke", key_revoke, key_revoke_usage },
		{ "list", key_list, key_list_usage },
	};

	return ctl_dispatch(argc, argv, c, subs, sizeof(subs) / sizeof(subs[0]),
	    key_usage);
}
