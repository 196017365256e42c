/* verify.c - checks a jsonl export line by line with the keys it carries:
 * every line canonical, partner JWS and receipts verified, entries
 * balanced, period chains recomputed against signed seals, the trailer.
 * Never looks at a database; stops at the first line that fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "clearing/jws.h"
#include "clearing/receipt.h"
#include "errors.h"
#include "export.h"
#include "pts_assert.h"
#include "seal.h"
#include "verify.h"

/* longest PEM public key accepted */
#define VERIFY_PEM_BYTES_MAX (64 * 1024)

static const struct jws_policy verify_policy_receipt = { JWS_TYP_RECEIPT, 0 };
static const struct jws_policy verify_policy_seal = { SEAL_JWS_TYP, 0 };

struct verify_key {
	char kid[129];
	char use[8];             /* "message" or "receipt" */
	char partner[65];
	EVP_PKEY *key;
};

struct verify_state {
	struct verify_report *rep;
	char *err;
	size_t errcap;
	EVP_MD_CTX *md;          /* digest of every byte before the end record */
	int seen_header, seen_end, keys_sorted;
	long long header_periods;
	struct verify_key *keys;
	size_t n_keys, cap_keys;
	/* the current period */
	int in_period, want_seal, have_seal, have_batch;
	char period[64];
	char batch_sha256[SEAL_HEX_CHARS];
	struct seal_fields seal;
	unsigned char h[SEAL_HASH_BYTES];
	long long count, first_entry, last_entry;
	/* the chain of the previous period, when it was sealed */
	int have_prev;
	char prev_chain[SEAL_HEX_CHARS];
};

static int
verify_fail(struct verify_state *s, const char *fmt, const char *detail)
{
	char what[512];

	snprintf(what, sizeof(what), fmt, detail != NULL ? detail : "");
	snprintf(s->err, s->errcap, "line %lld: %s", s->rep->lines, what);
	return C_ERR;
}

EVP_PKEY *
verify_pkey_from_pem(const char *pem, size_t len)
{
	BIO *bio;
	EVP_PKEY *key;

	if (len > (size_t)VERIFY_PEM_BYTES_MAX)
		return NULL;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return NULL;
	key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return key;
}

static const char *
verify_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* 1 when o.key is an integer, stored in *v */
static int
verify_int(json_t *o, const char *key, long long *v)
{
	json_t *j = json_object_get(o, key);

	if (!json_is_integer(j))
		return 0;
	*v = (long long)json_integer_value(j);
	return 1;
}

static int
verify_streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* ---------------------------------------------------------------- keys */

static int
verify_key_cmp(const void *a, const void *b)
{
	const struct verify_key *x = a, *y = b;
	int c = strcmp(x->use, y->use);

	return c != 0 ? c : strcmp(x->kid, y->kid);
}

/* the keys end where the first period starts: sorted for bsearch; C_ERR
 * if a (use, kid) is there twice */
static int
verify_keys_close(struct verify_state *s)
{
	if (s->keys_sorted)
		return C_OK;
	if (s->n_keys > 0)
		qsort(s->keys, s->n_keys, sizeof(*s->keys), verify_key_cmp);
	s->keys_sorted = 1;
	for (size_t i = 1; i < s->n_keys; i++)
		if (verify_key_cmp(&s->keys[i - 1], &s->keys[i]) == 0)
			return C_ERR;
	return C_OK;
}

static const struct verify_key *
verify_find_key(struct verify_state *s, const char *use, const char *kid)
{
	struct verify_key want;

	(void)verify_keys_close(s);
	if (s->n_keys == 0 || strlen(kid) >= sizeof(want.kid))
		return NULL;
	snprintf(want.use, sizeof(want.use), "%s", use);
	snprintf(want.kid, sizeof(want.kid), "%s", kid);
	return bsearch(&want, s->keys, s->n_keys, sizeof(*s->keys), verify_key_cmp);
}

static int
verify_key_record(struct verify_state *s, json_t *o)
{
	const char *use = verify_str(o, "use"), *kid = verify_str(o, "kid");
	const char *pem = verify_str(o, "public_pem"), *partner = verify_str(o, "partner");
	struct verify_key *k;
	json_t *jwk;
	int same;

	if (s->in_period || s->keys_sorted)
		return verify_fail(s, "key record after the first period%s", NULL);
	if (!verify_streq(use, "message") && !verify_streq(use, "receipt"))
		return verify_fail(s, "key: use must be message or receipt%s", NULL);
	if (kid == NULL || strlen(kid) == 0 || strlen(kid) > 128 || pem == NULL)
		return verify_fail(s, "key: kid and public_pem are required%s", NULL);
	if (verify_streq(use, "message") && (partner == NULL || strlen(partner) > 64))
		return verify_fail(s, "key %s: a message key names its partner", kid);
	if (s->n_keys >= VERIFY_KEYS_MAX)
		return verify_fail(s, "too many keys%s", NULL);
	if (s->n_keys == s->cap_keys) {
		size_t cap = s->cap_keys == 0 ? 16 : s->cap_keys * 2;
		struct verify_key *nk = realloc(s->keys, cap * sizeof(*nk));
		if (nk == NULL)
			return verify_fail(s, "out of memory%s", NULL);
		s->keys = nk;
		s->cap_keys = cap;
	}
	k = &s->keys[s->n_keys];
	memset(k, 0, sizeof(*k));
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	snprintf(k->use, sizeof(k->use), "%s", use);
	snprintf(k->partner, sizeof(k->partner), "%s", partner != NULL ? partner : "");
	k->key = verify_pkey_from_pem(pem, strlen(pem));
	if (k->key == NULL)
		return verify_fail(s, "key %s: public_pem is not a public key", kid);
	/* the JWK for JOSE libraries must be the same key */
	jwk = jwk_from_public_pkey(k->key, kid);
	same = jwk != NULL && json_equal(jwk, json_object_get(o, "jwk"));
	json_decref(jwk);
	s->n_keys++;
	if (!same)
		return verify_fail(s, "key %s: jwk differs from public_pem", kid);
	s->rep->keys++;
	return C_OK;
}

/* ---------------------------------------------------------------- signatures */

/* parses and verifies a compact JWS with key (use, its kid); t filled */
static int
verify_jws(struct verify_state *s, const char *raw, const struct jws_policy *pol,
    const char *use, struct jws *t, const struct verify_key **key_out,
    const char *what)
{
	const struct verify_key *k;

	memset(t, 0, sizeof(*t));
	if (raw == NULL)
		return verify_fail(s, "%s is missing", what);
	if (jws_parse_policy(raw, strlen(raw), pol, t) != ERR_OK || t->payload == NULL)
		return verify_fail(s, "%s is not a well-formed JWS", what);
	k = verify_find_key(s, use, t->kid);
	if (k == NULL)
		return verify_fail(s, "%s: its kid is not among the keys of the file", what);
	if (jws_verify(t, k->key) != ERR_OK)
		return verify_fail(s, "%s: signature does not verify", what);
	*key_out = k;
	return C_OK;
}

/* the fields a message payload and a receipt share with the entry line */
static int
verify_same_fields(json_t *payload, json_t *e)
{
	static const char *const strs[] = { "partner", "id", "type", "member" };
	long long a, b;

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!verify_streq(verify_str(payload, strs[i]), verify_str(e, strs[i])))
			return 0;
	return verify_int(payload, "points", &a) && verify_int(e, "points", &b) && a == b;
}

static int
verify_message_sig(struct verify_state *s, json_t *e)
{
	const char *jws = verify_str(e, "jws");
	const struct verify_key *k = NULL;
	struct jws t;
	int rc;

	rc = verify_jws(s, jws, &jws_policy_message, "message", &t, &k,
	    "partner jws");
	if (rc == C_OK && !verify_streq(k->partner, verify_str(e, "partner")))
		rc = verify_fail(s, "partner jws: signed with a key of another partner%s", NULL);
	if (rc == C_OK && (!verify_same_fields(t.payload, e) ||
	    !((verify_str(t.payload, "reverses") == NULL && verify_str(e, "reverses") == NULL) ||
	    verify_streq(verify_str(t.payload, "reverses"), verify_str(e, "reverses")))))
		rc = verify_fail(s, "partner jws: payload differs from the entry%s", NULL);
	jws_free(&t);
	if (rc == C_OK)
		s->rep->messages++;
	return rc;
}

static int
verify_receipt(struct verify_state *s, json_t *e)
{
	const char *jws = verify_str(e, "jws");
	const struct verify_key *k = NULL;
	char sha[65];
	long long a, b;
	struct jws t;
	int rc;

	rc = verify_jws(s, verify_str(e, "receipt"), &verify_policy_receipt, "receipt",
	    &t, &k, "receipt");
	if (rc == C_OK) {
		sha256_hex(jws, strlen(jws), sha);
		if (!verify_streq(verify_str(t.payload, "sha256"), sha))
			rc = verify_fail(s, "receipt: sha256 is not the hash of the jws%s", NULL);
		else if (!verify_same_fields(t.payload, e) ||
		    !verify_int(t.payload, "entry", &a) || !verify_int(e, "entry", &b) || a != b ||
		    !verify_streq(verify_str(t.payload, "accepted_at"), verify_str(e, "accepted_at")) ||
		    !verify_streq(verify_str(t.payload, "period"), verify_str(e, "period")))
			rc = verify_fail(s, "receipt: payload differs from the entry%s", NULL);
	}
	jws_free(&t);
	if (rc == C_OK)
		s->rep->receipts++;
	return rc;
}

/* ---------------------------------------------------------------- balance */

/* the debit and credit account names an entry's kind and type require:
 * want[0] -> want[1], or for a reverse (of a redeem) alt[0] -> alt[1] */
static int
verify_accounts(json_t *e, char want[2][160], char alt[2][160])
{
	const char *kind = verify_str(e, "kind"), *type = verify_str(e, "type");
	const char *p = verify_str(e, "partner"), *m = verify_str(e, "member");

	want[0][0] = want[1][0] = alt[0][0] = alt[1][0] = '\0';
	if (m == NULL)
		return C_ERR;
	if (verify_streq(kind, "expiry")) {
		snprintf(want[0], 160, "member:%s", m);
		snprintf(want[1], 160, "breakage");
		return C_OK;
	}
	if (!verify_streq(kind, "message") || p == NULL || type == NULL)
		return C_ERR;
	if (strcmp(type, "issue") == 0) {
		snprintf(want[0], 160, "issued:%s", p);
		snprintf(want[1], 160, "member:%s", m);
	} else if (strcmp(type, "redeem") == 0) {
		snprintf(want[0], 160, "member:%s", m);
		snprintf(want[1], 160, "redeemed:%s", p);
	} else if (strcmp(type, "reverse") == 0) {
		snprintf(want[0], 160, "member:%s", m);
		snprintf(want[1], 160, "issued:%s", p);
		snprintf(alt[0], 160, "redeemed:%s", p);
		snprintf(alt[1], 160, "member:%s", m);
	} else {
		return C_ERR;
	}
	return C_OK;
}

/* Σ transfers = points, each between the right accounts; Σ lot moves =
 * +points when the member is credited, -points when debited */
static int
verify_balance(struct verify_state *s, json_t *e, long long points)
{
	char want[2][160], alt[2][160], member[160];
	json_t *t, *l;
	long long sum = 0, lots = 0, v;
	int credited = 0, adjustment = verify_streq(verify_str(e, "kind"), "adjustment");
	size_t i;

	if (!json_is_array(json_object_get(e, "transfers")) ||
	    json_array_size(json_object_get(e, "transfers")) == 0)
		return verify_fail(s, "entry has no transfers%s", NULL);
	if (!adjustment && verify_accounts(e, want, alt) != C_OK)
		return verify_fail(s, "entry of an unknown kind or type%s", NULL);
	snprintf(member, sizeof(member), "member:%s",
	    verify_str(e, "member") != NULL ? verify_str(e, "member") : "");
	json_array_foreach(json_object_get(e, "transfers"), i, t) {
		const char *d = verify_str(t, "debit"), *c = verify_str(t, "credit");
		if (d == NULL || c == NULL || strcmp(d, c) == 0 ||
		    !verify_int(t, "points", &v) || v <= 0)
			return verify_fail(s, "malformed transfer%s", NULL);
		if (!adjustment && !(verify_streq(d, want[0]) && verify_streq(c, want[1])) &&
		    !(verify_streq(d, alt[0]) && verify_streq(c, alt[1])))
			return verify_fail(s, "transfer %s is not between the accounts of its kind", d);
		credited |= strcmp(c, member) == 0;
		sum += v;
	}
	if (adjustment)
		return C_OK;
	if (sum != points)
		return verify_fail(s, "transfers do not total the entry's points%s", NULL);
	json_array_foreach(json_object_get(e, "lots"), i, l) {
		long long lot;
		if (!verify_int(l, "lot", &lot) || !verify_int(l, "points", &v) || v == 0)
			return verify_fail(s, "malformed lot move%s", NULL);
		lots += v;
	}
	if (lots != (credited ? points : -points))
		return verify_fail(s, "lot moves do not match the transfers%s", NULL);
	return C_OK;
}

/* ---------------------------------------------------------------- entries, periods */

static int
verify_entry(struct verify_state *s, json_t *e, const char *line, size_t len)
{
	long long id, points;
	const char *kind = verify_str(e, "kind");

	if (!s->in_period)
		return verify_fail(s, "entry outside a period%s", NULL);
	if (s->want_seal && !s->have_seal)
		return verify_fail(s, "entry before the seal of its period%s", NULL);
	if (!verify_int(e, "entry", &id) || id <= 0 || (s->count > 0 && id <= s->last_entry))
		return verify_fail(s, "entry ids must increase within a period%s", NULL);
	if (!verify_streq(verify_str(e, "period"), s->period))
		return verify_fail(s, "entry of another period than %s", s->period);
	if (!verify_int(e, "points", &points) || points <= 0 || kind == NULL ||
	    verify_str(e, "accepted_at") == NULL)
		return verify_fail(s, "entry without points, kind or accepted_at%s", NULL);
	if (verify_balance(s, e, points) != C_OK)
		return C_ERR;
	if (strcmp(kind, "message") == 0 &&
	    (verify_message_sig(s, e) != C_OK || verify_receipt(s, e) != C_OK))
		return C_ERR;
	if (seal_chain_step(s->h, line, len) != C_OK)
		return verify_fail(s, "cannot hash the line%s", NULL);
	if (s->count == 0)
		s->first_entry = id;
	s->last_entry = id;
	s->count++;
	s->rep->entries++;
	s->rep->expiries += strcmp(kind, "expiry") == 0;
	return C_OK;
}

/* the end of the current period: chain, count and entries vs its seal */
static int
verify_period_end(struct verify_state *s)
{
	char hex[SEAL_HEX_CHARS];

	if (!s->in_period)
		return C_OK;
	s->in_period = 0;
	s->have_prev = 0;
	if (!s->want_seal) {
		size_t n = strlen(s->rep->open_periods);
		if (n + strlen(s->period) + 2 < sizeof(s->rep->open_periods))
			snprintf(s->rep->open_periods + n, sizeof(s->rep->open_periods) - n,
			    "%s%s", n > 0 ? " " : "", s->period);
		return C_OK;
	}
	if (!s->have_seal)
		return verify_fail(s, "period %s is sealed but its seal is missing", s->period);
	seal_hex(s->h, hex);
	if (s->count != s->seal.count || (s->count > 0 &&
	    (s->first_entry != s->seal.first_entry || s->last_entry != s->seal.last_entry)))
		return verify_fail(s, "period %s: entries differ from its seal (count, first, last)",
		    s->period);
	if (strcmp(hex, s->seal.chain) != 0)
		return verify_fail(s, "period %s: recomputed chain differs from its seal", s->period);
	s->have_prev = 1;
	snprintf(s->prev_chain, sizeof(s->prev_chain), "%s", hex);
	s->rep->sealed++;
	return C_OK;
}

static int
verify_period_record(struct verify_state *s, json_t *o)
{
	const char *label = verify_str(o, "period");
	json_t *sealed = json_object_get(o, "sealed");

	if (verify_period_end(s) != C_OK)
		return C_ERR;
	if (label == NULL || strlen(label) >= sizeof(s->period) || !json_is_boolean(sealed))
		return verify_fail(s, "period record without period or sealed%s", NULL);
	if (verify_keys_close(s) != C_OK)
		return verify_fail(s, "a key is in the file twice%s", NULL);
	snprintf(s->period, sizeof(s->period), "%s", label);
	s->in_period = 1;
	s->want_seal = json_is_true(sealed);
	s->have_seal = s->have_batch = 0;
	s->count = s->first_entry = s->last_entry = 0;
	memset(s->h, 0, sizeof(s->h));
	s->rep->periods++;
	return C_OK;
}

static int
verify_batch_record(struct verify_state *s, json_t *o)
{
	const char *doc = verify_str(o, "document"), *sha = verify_str(o, "sha256");
	char hex[65];

	if (!s->in_period || !s->want_seal || s->have_batch || s->have_seal ||
	    !verify_streq(verify_str(o, "period"), s->period))
		return verify_fail(s, "batch record out of place%s", NULL);
	if (doc == NULL || sha == NULL)
		return verify_fail(s, "batch record without document or sha256%s", NULL);
	sha256_hex(doc, strlen(doc), hex);
	if (strcmp(hex, sha) != 0)
		return verify_fail(s, "batch of %s: sha256 is not the hash of its document", s->period);
	snprintf(s->batch_sha256, sizeof(s->batch_sha256), "%s", hex);
	s->have_batch = 1;
	s->rep->batches++;
	return C_OK;
}

/* copies the seal payload into s->seal; C_ERR if a field is missing */
static int
verify_seal_fields(struct verify_state *s, json_t *p)
{
	const char *f[4] = { verify_str(p, "period"), verify_str(p, "chain"),
	    verify_str(p, "prev"), verify_str(p, "batch_sha256") };
	unsigned char tmp[SEAL_HASH_BYTES];

	for (int i = 0; i < 4; i++)
		if (f[i] == NULL || (i > 0 && seal_unhex(f[i], tmp) != C_OK))
			return C_ERR;
	if (!verify_int(p, "count", &s->seal.count) || s->seal.count < 0)
		return C_ERR;
	s->seal.first_entry = s->seal.last_entry = 0;
	if (s->seal.count > 0 && (!verify_int(p, "first_entry", &s->seal.first_entry) ||
	    !verify_int(p, "last_entry", &s->seal.last_entry)))
		return C_ERR;
	snprintf(s->seal.period, sizeof(s->seal.period), "%s", f[0]);
	snprintf(s->seal.chain, sizeof(s->seal.chain), "%s", f[1]);
	snprintf(s->seal.prev, sizeof(s->seal.prev), "%s", f[2]);
	snprintf(s->seal.batch_sha256, sizeof(s->seal.batch_sha256), "%s", f[3]);
	return C_OK;
}

static int
verify_seal_record(struct verify_state *s, json_t *o)
{
	const struct verify_key *k = NULL;
	struct jws t;
	int rc;

	if (!s->in_period || !s->want_seal || !s->have_batch || s->have_seal ||
	    !verify_streq(verify_str(o, "period"), s->period))
		return verify_fail(s, "seal record out of place%s", NULL);
	rc = verify_jws(s, verify_str(o, "seal"), &verify_policy_seal, "receipt", &t,
	    &k, "seal");
	if (rc == C_OK && !verify_streq(verify_str(o, "kid"), k->kid))
		rc = verify_fail(s, "seal: kid differs from the seal's header%s", NULL);
	if (rc == C_OK && verify_seal_fields(s, t.payload) != C_OK)
		rc = verify_fail(s, "seal: payload lacks a field%s", NULL);
	jws_free(&t);
	if (rc != C_OK)
		return C_ERR;
	if (strcmp(s->seal.period, s->period) != 0)
		return verify_fail(s, "seal of another period than %s", s->period);
	if (strcmp(s->seal.batch_sha256, s->batch_sha256) != 0)
		return verify_fail(s, "seal of %s: batch_sha256 differs from the batch", s->period);
	if (s->have_prev) {
		if (strcmp(s->seal.prev, s->prev_chain) != 0)
			return verify_fail(s, "seal of %s: prev is not the previous seal's chain",
			    s->period);
		s->rep->links++;
	}
	PTS_ASSERT(seal_unhex(s->seal.prev, s->h) == C_OK);
	s->have_seal = 1;
	return C_OK;
}

/* ---------------------------------------------------------------- header, end */

static int
verify_header_record(struct verify_state *s, json_t *o)
{
	long long v;

	if (!verify_streq(verify_str(o, "format"), EXPORT_JSONL_FORMAT) ||
	    !verify_int(o, "version", &v) || v != EXPORT_VERSION)
		return verify_fail(s, "not a pointsd jsonl export of version 1%s", NULL);
	if (!verify_int(o, "periods", &s->header_periods))
		return verify_fail(s, "export record without periods%s", NULL);
	s->seen_header = 1;
	return C_OK;
}

static int
verify_end_record(struct verify_state *s, json_t *o)
{
	unsigned char h[SEAL_HASH_BYTES];
	char hex[SEAL_HEX_CHARS];
	unsigned int n = 0;
	long long p, e, k;

	if (verify_period_end(s) != C_OK)
		return C_ERR;
	if (EVP_DigestFinal_ex(s->md, h, &n) != 1 || n != SEAL_HASH_BYTES)
		return verify_fail(s, "cannot finish the digest%s", NULL);
	seal_hex(h, hex);
	if (!verify_int(o, "periods", &p) || !verify_int(o, "entries", &e) ||
	    !verify_int(o, "keys", &k) || p != s->rep->periods || e != s->rep->entries ||
	    k != s->rep->keys || p != s->header_periods)
		return verify_fail(s, "end record: counts differ from the file%s", NULL);
	if (!verify_streq(verify_str(o, "sha256"), hex))
		return verify_fail(s, "end record: sha256 differs from the file's bytes%s", NULL);
	s->seen_end = 1;
	return C_OK;
}

/* ---------------------------------------------------------------- lines */

static int
verify_line(struct verify_state *s, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	char *canon = NULL;
	const char *rec;
	int rc;

	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return verify_fail(s, "not a JSON object%s", NULL);
	}
	canon = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	rc = canon != NULL && strlen(canon) == len && memcmp(canon, line, len) == 0 ?
	    C_OK : verify_fail(s, "not in canonical form (sorted keys, no whitespace)%s", NULL);
	free(canon);
	rec = verify_str(o, "record");
	if (rc == C_OK && s->seen_end)
		rc = verify_fail(s, "data after the end record%s", NULL);
	else if (rc == C_OK && !s->seen_header && !verify_streq(rec, "export"))
		rc = verify_fail(s, "the first line must be the export record%s", NULL);
	else if (rc != C_OK)
		;
	else if (rec == NULL && json_object_get(o, "record") == NULL)
		rc = verify_entry(s, o, line, len);
	else if (verify_streq(rec, "export") && !s->seen_header)
		rc = verify_header_record(s, o);
	else if (verify_streq(rec, "key"))
		rc = verify_key_record(s, o);
	else if (verify_streq(rec, "period"))
		rc = verify_period_record(s, o);
	else if (verify_streq(rec, "batch"))
		rc = verify_batch_record(s, o);
	else if (verify_streq(rec, "seal"))
		rc = verify_seal_record(s, o);
	else if (verify_streq(rec, "end"))
		rc = verify_end_record(s, o);
	else
		rc = verify_fail(s, "unknown record %s", rec);
	json_decref(o);
	return rc;
}

static void
verify_free(struct verify_state *s)
{
	for (size_t i = 0; i < s->n_keys; i++)
		EVP_PKEY_free(s->keys[i].key);
	free(s->keys);
	EVP_MD_CTX_free(s->md);
}

int
verify_export(FILE *in, struct verify_report *rep, char *err, size_t errcap)
{
	struct verify_state s;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = C_OK;

	memset(rep, 0, sizeof(*rep));
	memset(&s, 0, sizeof(s));
	s.rep = rep;
	s.err = err;
	s.errcap = errcap;
	err[0] = '\0';
	s.md = EVP_MD_CTX_new();
	if (s.md == NULL || EVP_DigestInit_ex(s.md, EVP_sha256(), NULL) != 1) {
		snprintf(err, errcap, "cannot start the digest");
		verify_free(&s);
		return C_ERR;
	}
	while (rc == C_OK && (n = getline(&line, &cap, in)) > 0) {
		rep->lines++;
		if (n > VERIFY_LINE_BYTES_MAX)
			rc = verify_fail(&s, "line too long%s", NULL);
		else if (line[n - 1] != '\n')
			rc = verify_fail(&s, "the file does not end with a newline%s", NULL);
		else
			rc = verify_line(&s, line, (size_t)n - 1);
		if (rc == C_OK && !s.seen_end && EVP_DigestUpdate(s.md, line, (size_t)n) != 1)
			rc = verify_fail(&s, "cannot hash the line%s", NULL);
	}
	if (rc == C_OK && ferror(in))
		rc = verify_fail(&s, "cannot read the file%s", NULL);
	if (rc == C_OK && !s.seen_end) {
		rep->lines++;
		rc = verify_fail(&s, "the file ends without its end record (truncated)%s", NULL);
	}
	free(line);
	verify_free(&s);
	return rc;
}
