/* fuzz_batch.c - libFuzzer target for the batch line splitter
 * (route_split_batch): lines are exactly the '\n'-separated pieces, a final
 * '\n' starts no line, the count is right even past max, and nothing past
 * max is written. Byte 0 sets max (0..255). */
#include <stdint.h>
#include <string.h>

#include "clearing/route.h"
#include "fuzz_util.h"

#define FUZZ_MAX_LINES 256

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct batch_line lines[FUZZ_MAX_LINES + 1];
	const char *body;
	size_t max, len, n, want = 0, i, pos = 0;

	if (size == 0)
		return 0;
	max = data[0];
	body = (const char *)data + 1;
	len = size - 1;
	memset(lines, 0xA5, sizeof(lines));
	n = route_split_batch(body, len, lines, max);
	/* the count: one per '\n', plus one for a last line without '\n',
	 * and an empty body is one (empty) line */
	for (i = 0; i < len; i++)
		want += body[i] == '\n';
	if (len == 0 || body[len - 1] != '\n')
		want++;
	FUZZ_CHECK(n == want);
	/* nothing written past max */
	for (i = max; i <= FUZZ_MAX_LINES; i++) {
		const unsigned char *b = (const unsigned char *)&lines[i];
		for (size_t k = 0; k < sizeof(lines[i]); k++)
			FUZZ_CHECK(b[k] == 0xA5);
	}
	for (i = 0; i < n && i < max; i++) {
		FUZZ_CHECK(lines[i].p == body + pos);
		FUZZ_CHECK(pos + lines[i].len <= len);
		FUZZ_CHECK(memchr(lines[i].p, '\n', lines[i].len) == NULL);
		pos += lines[i].len;
		FUZZ_CHECK(pos == len || body[pos] == '\n');
		pos++;
	}
	if (n <= max)
		FUZZ_CHECK(pos == len + 1 || (len > 0 && pos == len));
	return 0;
}
