/* cmd_sign.c - `pointsctl sign`: the partner-side helper that signs a payload
 * as a compact JWS with the partner's private key, through clearing/jws.c.
 * Never talks to the database and never prints key material. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "clearing/jws.h"
#include "ctl.h"
#include "errors.h"
#include "pts_limits.h"

#define SIGN_TYP JWS_TYP_MESSAGE

static const char sign_usage[] =
    "usage: pointsctl sign --key FILE --kid KID [--raw] [PAYLOAD.json]\n"
    "\n"
    "Prints the compact JWS of the payload (a JSON object, from PAYLOAD.json or\n"
    "stdin) signed with the private key FILE (PEM, Ed25519 -> EdDSA or P-256 ->\n"
    "ES256), header {\"alg\",\"kid\",\"typ\":\"points+jwt\"}. \"iat\" (now) is added\n"
    "when absent and the payload is re-serialized compactly, keeping key order.\n"
    "--raw signs the bytes as given, unchanged (for tests of malformed payloads).\n";

/* never prompt for a passphrase: an encrypted key is refused */
static int
sign_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *
sign_load_key(const char *path)
{
	EVP_PKEY *pkey = NULL;
	enum jws_alg alg = JWS_ALG_UNKNOWN;
	BIO *bio;
	char q[96];

	ERR_clear_error();
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		ctl_fail(CTL_EXIT_INPUT, "sign: cannot read the key file %s",
		    ctl_quote(path, q, sizeof(q)));
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, sign_no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (pkey == NULL) {
		ctl_fail(CTL_EXIT_INPUT, "sign: %s is not an unencrypted PEM "
		    "private key", ctl_quote(path, q, sizeof(q)));
		return NULL;
	}
	/* the algorithm comes from the key: Ed25519 -> EdDSA, P-256 -> ES256 */
	if (jws_alg_from_pkey(pkey, &alg) != C_OK) {
		ctl_fail(CTL_EXIT_INPUT, "sign: unsupported key type: Ed25519 or "
		    "P-256 expected");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/* the payload to sign: the object with "iat" added when absent, compact */
static char *
sign_payload(const char *text, size_t len)
{
	json_error_t jerr;
	json_t *obj;
	char *out = NULL;

	obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL) {
		ctl_fail(CTL_EXIT_INPUT, "sign: payload is not valid json: %s "
		    "(line %d)", jerr.text, jerr.line);
		return NULL;
	}
	if (!json_is_object(obj)) {
		ctl_fail(CTL_EXIT_INPUT, "sign: payload is not a json object");
		goto out;
	}
	if (json_object_get(obj, "iat") == NULL &&
	    json_object_set_new(obj, "iat", json_integer((json_int_t)time(NULL))) != 0) {
		ctl_fail(CTL_EXIT_INPUT, "sign: out of memory");
		goto out;
	}
	out = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (out == NULL)
		ctl_fail(CTL_EXIT_INPUT, "sign: cannot serialize the payload");
out:
	json_decref(obj);
	return out;
}

static int
sign_run(const char *key_path, const char *kid, const char *payload_path,
    int raw)
{
	EVP_PKEY *pkey = NULL;
	char *text = NULL, *payload = NULL, *jws = NULL, q[96];
	const char *reason = NULL;
	size_t len = 0;
	int st = CTL_EXIT_INPUT;

	pkey = sign_load_key(key_path);
	if (pkey == NULL)
		goto out;
	if (ctl_read_file(payload_path, LIMIT_MESSAGE_BYTES, &text, &len,
	    &reason) != C_OK) {
		ctl_fail(st, "sign: payload %s: %s", payload_path == NULL ?
		    "'-'" : ctl_quote(payload_path, q, sizeof(q)), reason);
		goto out;
	}
	payload = raw ? text : sign_payload(text, len);
	if (payload == NULL)
		goto out;
	jws = jws_sign_compact(pkey, kid, SIGN_TYP, payload,
	    raw ? len : strlen(payload));
	if (jws == NULL) {
		ctl_fail(st, "sign: signing failed");
		goto out;
	}
	printf("%s\n", jws);
	st = CTL_EXIT_OK;
out:
	free(jws);
	if (payload != text)
		free(payload);
	free(text);
	EVP_PKEY_free(pkey);
	return st;
}

int
cmd_sign(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "kid", required_argument, NULL, 'i' },
		{ "raw", no_argument, NULL, 'r' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *key = NULL, *kid = NULL;
	char q[160];
	int st, raw = 0;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hk:i:r", opts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'k': key = optarg; continue;
		case 'i': kid = optarg; continue;
		case 'r': raw = 1; continue;
		default: break;
		}
		st = ctl_option(c, ch, argv, sign_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 0, 1, sign_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (key == NULL || kid == NULL)
		return ctl_usage_fail(sign_usage, key == NULL ? "missing --key" :
		    "missing --kid");
	if (!ctl_valid_name(kid, LIMIT_KID_CHARS, "._:-"))
		return ctl_fail(CTL_EXIT_INPUT, "sign: bad kid %s: 1..128 "
		    "characters of [A-Za-z0-9._:-]", ctl_quote(kid, q, sizeof(q)));
	return sign_run(key, kid, optind < argc ? argv[optind] : NULL, raw);
}
