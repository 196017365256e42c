/* decimal.c - exact decimal parsing and formatting in integer units.
 * Owns: syntax of prices typed by operators. Never uses floating point. */
#include <stdio.h>
#include <string.h>

#include "decimal.h"
#include "errors.h"
#include "pts_assert.h"

#define DECIMAL_FRAC_DIGITS_MAX 6
#define DECIMAL_MICROS_PER_UNIT 1000000LL

static int
decimal_is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* the reason for a character that can never appear in a price */
static const char *
decimal_bad_char_reason(const char *s, size_t i)
{
	char ch = s[i];

	if (ch == '-')
		return i == 0 ? "negative values are not allowed" :
		    "not a decimal number";
	if (ch == '+')
		return "signs are not allowed";
	if (ch == 'e' || ch == 'E')
		return "exponents are not allowed";
	if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
		return "spaces are not allowed";
	if (ch == ',')
		return "a comma is not a decimal point";
	return "not a decimal number";
}

/* checks the syntax; sets the lengths of the integer and fraction parts */
static int
decimal_check_syntax(const char *s, size_t *int_len, size_t *frac_len,
    const char **reason)
{
	size_t i = 0;
	size_t dot = 0;
	int seen_dot = 0;

	if (s[0] == '\0') {
		*reason = "empty value";
		return C_ERR;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (decimal_is_digit(s[i]))
			continue;
		if (s[i] == '.' && !seen_dot) {
			seen_dot = 1;
			dot = i;
			continue;
		}
		*reason = s[i] == '.' ? "more than one decimal point" :
		    decimal_bad_char_reason(s, i);
		return C_ERR;
	}
	if (seen_dot && dot == 0) {
		*reason = "missing digits before the decimal point";
		return C_ERR;
	}
	if (seen_dot && s[dot + 1] == '\0') {
		*reason = "missing digits after the decimal point";
		return C_ERR;
	}
	*int_len = seen_dot ? dot : i;
	*frac_len = seen_dot ? i - dot - 1 : 0;
	if (*frac_len > DECIMAL_FRAC_DIGITS_MAX) {
		*reason = "more than 6 decimals";
		return C_ERR;
	}
	return C_OK;
}

int
decimal_parse_micros(const char *s, long long max_micros,
    long long *out_micros, const char **reason)
{
	size_t int_len = 0, frac_len = 0, i;
	long long units = 0, frac = 0, limit_units;

	PTS_ASSERT(max_micros >= 0);
	*reason = NULL;
	if (s == NULL) {
		*reason = "empty value";
		return C_ERR;
	}
	if (decimal_check_syntax(s, &int_len, &frac_len, reason) != C_OK)
		return C_ERR;
	/* integer part: stop as soon as it alone passes the maximum */
	limit_units = max_micros / DECIMAL_MICROS_PER_UNIT;
	for (i = 0; i < int_len; i++) {
		units = units * 10 + (s[i] - '0');
		if (units > limit_units) {
			*reason = "above the maximum";
			return C_ERR;
		}
	}
	for (i = 0; i < DECIMAL_FRAC_DIGITS_MAX; i++) {
		int d = i < frac_len ? s[int_len + 1 + i] - '0' : 0;
		frac = frac * 10 + d;
	}
	/* units <= max / 10^6, so units * 10^6 + frac cannot overflow */
	if (units * DECIMAL_MICROS_PER_UNIT > max_micros - frac) {
		*reason = "above the maximum";
		return C_ERR;
	}
	*out_micros = units * DECIMAL_MICROS_PER_UNIT + frac;
	PTS_ASSERT(*out_micros >= 0 && *out_micros <= max_micros);
	return C_OK;
}

int
decimal_format_minor(long long minor, int exponent, char *out, size_t cap)
{
	char digits[32];
	unsigned long long mag;
	size_t nd = 0, n = 0, i, width;
	int neg = minor < 0;

	if (exponent < 0 || exponent > 18 || cap == 0)
		return C_ERR;
	/* magnitude without negating LLONG_MIN as a signed value */
	mag = neg ? 0ULL - (unsigned long long)minor : (unsigned long long)minor;
	do {
		digits[nd++] = (char)('0' + mag % 10);
		mag /= 10;
	} while (mag > 0);
	width = nd > (size_t)exponent ? nd : (size_t)exponent + 1;
	/* sign + digits + point + NUL */
	if ((size_t)neg + width + (exponent > 0) + 1 > cap)
		return C_ERR;
	if (neg)
		out[n++] = '-';
	for (i = width; i > 0; i--) {
		size_t pos = i - 1;  /* power of ten of this digit */
		out[n++] = pos < nd ? digits[pos] : '0';
		if (pos == (size_t)exponent && exponent > 0)
			out[n++] = '.';
	}
	out[n] = '\0';
	return C_OK;
}

int
decimal_format_micros(long long micros, char *out, size_t cap)
{
	return decimal_format_minor(micros, DECIMAL_FRAC_DIGITS_MAX, out, cap);
}
