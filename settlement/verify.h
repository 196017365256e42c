/* verify.h - re-verifies a jsonl export from the file alone (ledger.md §5):
 * partner signatures, receipts, the balance of every entry, each sealed
 * period's chain, seal signature and link, batch digests, the trailer.
 * Never trusts anything but the keys and bytes in the file. */
#ifndef PTS_VERIFY_H
#define PTS_VERIFY_H

#include <stdio.h>
#include <stddef.h>
#include <openssl/evp.h>

/* longest line accepted (a batch document is one line) */
#define VERIFY_LINE_BYTES_MAX (64L * 1024 * 1024)
/* most keys an export may carry */
#define VERIFY_KEYS_MAX 100000

struct verify_report {
	long long lines;
	long long keys;          /* message and receipt keys */
	long long periods;
	long long sealed;        /* periods with a seal: chain, signature checked */
	long long links;         /* seals whose prev matched the previous seal */
	long long batches;       /* batch documents whose sha256 matched */
	long long entries;       /* every entry: balance, accounts, lot moves */
	long long messages;      /* partner signatures verified */
	long long receipts;      /* receipts verified against the request bytes */
	long long expiries;
	char open_periods[256];  /* labels of periods without a seal (cut short) */
};

/* a public key from PEM text (SubjectPublicKeyInfo); NULL if it is none */
EVP_PKEY *verify_pkey_from_pem(const char *pem, size_t len);

/* reads a jsonl export to its end. C_OK when every check passed; C_ERR
 * with "line N: <what failed>" in err (N counted from 1) at the first
 * failure. rep is filled as far as the file was read. */
int verify_export(FILE *in, struct verify_report *rep, char *err, size_t errcap);

#endif
