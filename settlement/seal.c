/* seal.c - the SHA-256 chain over a period's canonical entry lines, its
 * payload and its EdDSA signature (ledger.md §5).
 * Never hashes anything but the bytes canon.c builds, in entry order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "canon.h"
#include "clearing/jws.h"
#include "errors.h"
#include "pts_assert.h"
#include "seal.h"

int
seal_chain_step(unsigned char h[SEAL_HASH_BYTES], const char *line, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int out_len = 0;
	int rc = C_ERR;

	if (md == NULL)
		return C_ERR;
	ERR_clear_error();
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, h, SEAL_HASH_BYTES) != 1 ||
	    EVP_DigestUpdate(md, line, len) != 1 ||
	    EVP_DigestUpdate(md, "\n", 1) != 1 ||
	    EVP_DigestFinal_ex(md, h, &out_len) != 1)
		goto out;
	PTS_ASSERT(out_len == SEAL_HASH_BYTES);
	rc = C_OK;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

void
seal_hex(const unsigned char h[SEAL_HASH_BYTES], char out[SEAL_HEX_CHARS])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < SEAL_HASH_BYTES; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 0x0f];
	}
	out[2 * SEAL_HASH_BYTES] = '\0';
}

static int
seal_nibble(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int
seal_unhex(const char *hex, unsigned char h[SEAL_HASH_BYTES])
{
	if (strlen(hex) != 2 * SEAL_HASH_BYTES)
		return C_ERR;
	for (int i = 0; i < SEAL_HASH_BYTES; i++) {
		int hi = seal_nibble(hex[2 * i]), lo = seal_nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return C_ERR;
		h[i] = (unsigned char)(hi << 4 | lo);
	}
	return C_OK;
}

char *
seal_payload(const struct seal_fields *f)
{
	json_t *obj = json_pack("{s:s, s:s, s:I, s:s, s:s}",
	    "period", f->period, "chain", f->chain, "count", (json_int_t)f->count,
	    "prev", f->prev, "batch_sha256", f->batch_sha256);
	char *out = NULL;

	if (obj == NULL)
		return NULL;
	if (f->count > 0 &&
	    (json_object_set_new(obj, "first_entry", json_integer(f->first_entry)) != 0 ||
	    json_object_set_new(obj, "last_entry", json_integer(f->last_entry)) != 0))
		goto out;
	out = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(obj);
	return out;
}

char *
seal_sign(EVP_PKEY *key, const char *kid, const struct seal_fields *f)
{
	char *payload = seal_payload(f);
	char *jws;

	if (payload == NULL)
		return NULL;
	jws = jws_sign_compact(key, kid, SEAL_JWS_TYP, payload, strlen(payload));
	free(payload);
	return jws;
}

struct seal_walk {
	unsigned char h[SEAL_HASH_BYTES];
	struct seal_fields *f;
};

static int
seal_walk_line(void *ctx, long long entry_id, const char *line, size_t len)
{
	struct seal_walk *w = ctx;

	if (w->f->count > 0 && entry_id <= w->f->last_entry)
		return C_ERR;
	if (seal_chain_step(w->h, line, len) != C_OK)
		return C_ERR;
	if (w->f->count == 0)
		w->f->first_entry = entry_id;
	w->f->last_entry = entry_id;
	w->f->count++;
	return C_OK;
}

int
seal_period_compute(PGconn *pg, struct seal_fields *f, char *err, size_t errcap)
{
	struct seal_walk w;

	w.f = f;
	f->count = 0;
	f->first_entry = 0;
	f->last_entry = 0;
	if (seal_unhex(f->prev, w.h) != C_OK) {
		snprintf(err, errcap, "seal: previous chain hash is not 64 hex digits");
		return C_ERR;
	}
	if (canon_period_foreach(pg, f->period, seal_walk_line, &w, err, errcap) != C_OK)
		return C_ERR;
	seal_hex(w.h, f->chain);
	return C_OK;
}
