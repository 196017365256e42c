/* fuzz_decimal.c - libFuzzer target for decimal_parse_micros and the
 * formatters: the parser agrees with an independent reading of
 * ^[0-9]+(\.[0-9]{1,6})?$ and the maximum, and format -> parse is identity.
 * Input: 8 bytes of max (big-endian, made non-negative), then the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "errors.h"
#include "fuzz_util.h"

/* the reference: syntax only, and the value as an exact pair when it fits */
static int
fuzz_ref(const char *s, long long max, long long *out)
{
	size_t i = 0, f = 0;
	unsigned __int128 v = 0;

	while (s[i] >= '0' && s[i] <= '9') {
		if (v < ((unsigned __int128)1 << 100))
			v = v * 10 + (unsigned)(s[i] - '0');
		i++;
	}
	if (i == 0)
		return -1;
	v *= 1000000;
	if (s[i] == '.') {
		unsigned long long frac = 0;
		i++;
		while (s[i + f] >= '0' && s[i + f] <= '9')
			f++;
		if (f < 1 || f > 6)
			return -1;
		for (size_t k = 0; k < 6; k++)
			frac = frac * 10 + (k < f ? (unsigned)(s[i + k] - '0') : 0);
		v += frac;
		i += f;
	}
	if (s[i] != '\0')
		return -1;
	if (v > (unsigned __int128)max)
		return 0;   /* well-formed but above the maximum */
	*out = (long long)v;
	return 1;
}

static void
fuzz_format(long long v, int exponent)
{
	char buf[64], tiny[4];

	FUZZ_CHECK(decimal_format_minor(v, exponent, buf, sizeof(buf)) == C_OK);
	FUZZ_CHECK(strlen(buf) < sizeof(buf));
	(void)decimal_format_minor(v, exponent, tiny, sizeof(tiny));
	if (v >= 0 && exponent <= 6) {
		long long back = 0;
		const char *reason;
		char micros[64];
		FUZZ_CHECK(decimal_format_micros(v, micros, sizeof(micros)) == C_OK);
		FUZZ_CHECK(decimal_parse_micros(micros, 9223372036854775807LL, &back, &reason) == C_OK);
		FUZZ_CHECK(back == v);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long long m = 0;
	long long max, got = -1, want = -1;
	const char *reason = NULL;
	char *s;
	int rc, ref;

	if (size < 8)
		return 0;
	for (int i = 0; i < 8; i++)
		m = (m << 8) | data[i];
	max = (long long)(m >> 1);
	s = fuzz_cstr(data + 8, size - 8);
	rc = decimal_parse_micros(s, max, &got, &reason);
	ref = fuzz_ref(s, max, &want);  /* the C string, as the parser sees it */
	if (rc == C_OK) {
		FUZZ_CHECK(ref == 1 && got == want && reason == NULL);
		FUZZ_CHECK(got >= 0 && got <= max);
	} else {
		FUZZ_CHECK(ref != 1 && reason != NULL && reason[0] != '\0');
	}
	/* exponents 0..18 format; 19 and 255 are refused */
	if (data[7] % 20 == 19 || data[7] == 255) {
		char buf[64];
		FUZZ_CHECK(decimal_format_minor((long long)m, data[7] == 255 ? -1 : 19, buf, sizeof(buf)) == C_ERR);
	} else {
		fuzz_format((long long)m, (int)(data[7] % 20));
	}
	free(s);
	return 0;
}
