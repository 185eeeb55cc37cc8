/* maglev_fill.c: agent/datapath/maglev.py's table construction in C.
 *
 * tulle_maglev_fill: the population loop alone (maglev.py _fill). Backend b (0..n-1, in name
 * order) has the preference list (offset[b] + j * skip[b]) % size, j = 0, 1, ...; backends
 * take turns in order, each claiming its next preferred slot still empty, until all `size`
 * slots are taken. out[slot] = order[b] (the caller's index of b).
 *
 * tulle_maglev_tables: whole tables for many services in one call (the planner's first sync
 * builds 10,000: one ctypes crossing instead of 10,000, and no Python per backend). Each
 * backend is an IPv4 address and a port; its name is "a.b.c.d:port" as Python's str() writes
 * it, its (offset, skip) are maglev.py _permutation's (BLAKE2b with a personalisation, below),
 * and the fill is the loop above.
 *
 * Same tables as the Python code, slot for slot (tests/unit/datapath/test_maglev_native.py).
 * Both return 0, or -1 on arguments they cannot fill (then `out` holds nothing useful).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 22 /* "255.255.255.255:65535" and its NUL */

int tulle_maglev_fill(const uint32_t *offset, const uint32_t *skip, const uint16_t *order,
		      uint32_t n, uint32_t size, uint16_t *out)
{
	uint32_t *at, *tried; /* per backend: its current preference's slot, and j */
	uint8_t *taken;
	uint32_t k, b = 0;

	if (n == 0 || size <= n)
		return -1;
	at = calloc(n, sizeof(*at));
	tried = calloc(n, sizeof(*tried));
	taken = calloc(size, 1);
	if (!at || !tried || !taken) {
		free(at);
		free(tried);
		free(taken);
		return -1;
	}
	for (b = 0; b < n; b++) {
		if (offset[b] >= size || skip[b] == 0 || skip[b] >= size) {
			free(at);
			free(tried);
			free(taken);
			return -1;
		}
		at[b] = offset[b];
	}
	b = 0;
	for (k = 0; k < size; k++) {
		uint32_t slot = at[b], j = tried[b];

		/* skip is coprime to a prime size: within size tries a free slot turns up */
		while (taken[slot] && j < size) {
			slot += skip[b];
			if (slot >= size)
				slot -= size;
			j++;
		}
		taken[slot] = 1;
		out[slot] = order[b];
		/* the next preference after this one (j + 1) */
		at[b] = slot + skip[b] >= size ? slot + skip[b] - size : slot + skip[b];
		tried[b] = j + 1;
		if (++b == n)
			b = 0;
	}
	free(at);
	free(tried);
	free(taken);
	return 0;
}

/* -- BLAKE2b (RFC 7693), unkeyed, 8-byte digest, with a personalisation ------------------ */

static const uint64_t blake2b_iv[8] = {
	0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
	0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
	0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t blake2b_sigma[12][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
};

static uint64_t rotr64(uint64_t x, unsigned n)
{
	return (x >> n) | (x << (64 - n));
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v; /* little-endian, whatever the host */
}

#define G(a, b, c, d, x, y)                      \
	do {                                     \
		v[a] = v[a] + v[b] + (x);        \
		v[d] = rotr64(v[d] ^ v[a], 32);  \
		v[c] = v[c] + v[d];              \
		v[b] = rotr64(v[b] ^ v[c], 24);  \
		v[a] = v[a] + v[b] + (y);        \
		v[d] = rotr64(v[d] ^ v[a], 16);  \
		v[c] = v[c] + v[d];              \
		v[b] = rotr64(v[b] ^ v[c], 63);  \
	} while (0)

/* The digest's 8 bytes read big-endian (maglev.py: int.from_bytes(digest, "big")), for a
 * message of at most one block (128 bytes); h0 is the state after the parameter block. */
static uint64_t blake2b8(const uint64_t h0[8], const uint8_t *msg, uint32_t len)
{
	uint8_t block[128] = { 0 };
	uint64_t m[16], v[16];
	int i, r;

	memcpy(block, msg, len);
	for (i = 0; i < 16; i++)
		m[i] = load64(block + 8 * i);
	for (i = 0; i < 8; i++) {
		v[i] = h0[i];
		v[i + 8] = blake2b_iv[i];
	}
	v[12] ^= len; /* bytes compressed so far (the high word stays 0) */
	v[14] = ~v[14]; /* the last block */
	for (r = 0; r < 12; r++) {
		const uint8_t *s = blake2b_sigma[r];

		G(0, 4, 8, 12, m[s[0]], m[s[1]]);
		G(1, 5, 9, 13, m[s[2]], m[s[3]]);
		G(2, 6, 10, 14, m[s[4]], m[s[5]]);
		G(3, 7, 11, 15, m[s[6]], m[s[7]]);
		G(0, 5, 10, 15, m[s[8]], m[s[9]]);
		G(1, 6, 11, 12, m[s[10]], m[s[11]]);
		G(2, 7, 8, 13, m[s[12]], m[s[13]]);
		G(3, 4, 9, 14, m[s[14]], m[s[15]]);
	}
	return __builtin_bswap64(h0[0] ^ v[0] ^ v[8]);
}

/* The chaining state after the parameter block: digest length 8, no key, fanout and depth
 * 1, `person` (16 bytes, zero-padded) in words 6 and 7. */
static void blake2b8_init(uint64_t h[8], const uint8_t person[16])
{
	memcpy(h, blake2b_iv, sizeof(blake2b_iv));
	h[0] ^= 0x01010000ULL | 8;
	h[6] ^= load64(person);
	h[7] ^= load64(person + 8);
}

static const uint8_t offset_person[16] = "tulle-mglv-offs";
static const uint8_t skip_person[16] = "tulle-mglv-skip";

/* maglev.py _permutation of a name (exported for tests). */
int tulle_maglev_permutation(const uint8_t *name, uint32_t len, uint32_t size,
			     uint32_t *offset, uint32_t *skip)
{
	uint64_t ho[8], hs[8];

	if (len > 128 || size < 2)
		return -1;
	blake2b8_init(ho, offset_person);
	blake2b8_init(hs, skip_person);
	*offset = (uint32_t)(blake2b8(ho, name, len) % size);
	*skip = (uint32_t)(blake2b8(hs, name, len) % (size - 1) + 1);
	return 0;
}

/* -- whole tables ------------------------------------------------------------------------ */

static uint32_t put_decimal(char *p, uint32_t value)
{
	char digits[10];
	uint32_t n = 0, i;

	do {
		digits[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	for (i = 0; i < n; i++)
		p[i] = digits[n - 1 - i];
	return n;
}

/* "a.b.c.d:port", NUL-terminated; returns its length. */
static uint32_t backend_name(char *p, uint32_t ip, uint16_t port)
{
	uint32_t len = 0;

	for (int shift = 24; shift >= 0; shift -= 8) {
		len += put_decimal(p + len, (ip >> shift) & 0xff);
		p[len++] = shift ? '.' : ':';
	}
	len += put_decimal(p + len, port);
	p[len] = 0;
	return len;
}

struct scratch {
	char (*names)[NAME_MAX_LEN];
	uint16_t *order, *tmp;
	uint32_t *offset, *skip;
};

/* order[0..n) sorted by name (bottom-up merge sort: stable, O(n log n) for large sets). */
static void sort_by_name(struct scratch *s, uint32_t n)
{
	uint16_t *from = s->order, *to = s->tmp, *swap;
	uint32_t width, i;

	for (i = 0; i < n; i++)
		from[i] = (uint16_t)i;
	for (width = 1; width < n; width *= 2) {
		for (i = 0; i < n; i += 2 * width) {
			uint32_t lo = i, mid = i + width < n ? i + width : n;
			uint32_t hi = i + 2 * width < n ? i + 2 * width : n;
			uint32_t a = lo, b = mid, k = lo;

			while (a < mid && b < hi)
				to[k++] = strcmp(s->names[from[b]], s->names[from[a]]) < 0 ? from[b++]
											 : from[a++];
			while (a < mid)
				to[k++] = from[a++];
			while (b < hi)
				to[k++] = from[b++];
		}
		swap = from;
		from = to;
		to = swap;
	}
	if (from != s->order)
		memcpy(s->order, from, n * sizeof(*from));
}

/* Service i has backends ips/ports[start_i .. start_i + counts[i]) (start_i: the sum of the
 * counts before it), each at least 1 and fewer than `size`, no two alike; its table goes to
 * out[i * size .. (i + 1) * size), as indices into its own backends. */
int tulle_maglev_tables(const uint32_t *ips, const uint16_t *ports, const uint32_t *counts,
			uint32_t services, uint32_t size, uint16_t *out)
{
	struct scratch s;
	uint64_t ho[8], hs[8];
	uint32_t i, most = 0, start = 0;
	int err = 0;

	for (i = 0; i < services; i++)
		if (counts[i] > most)
			most = counts[i];
	if (services == 0)
		return 0;
	if (most >= size || most > 65535 || size < 2)
		return -1;
	s.names = malloc((size_t)most * sizeof(*s.names));
	s.order = malloc((size_t)most * sizeof(*s.order));
	s.tmp = malloc((size_t)most * sizeof(*s.tmp));
	s.offset = malloc((size_t)most * sizeof(*s.offset));
	s.skip = malloc((size_t)most * sizeof(*s.skip));
	if (!s.names || !s.order || !s.tmp || !s.offset || !s.skip) {
		err = -1;
		goto out;
	}
	blake2b8_init(ho, offset_person);
	blake2b8_init(hs, skip_person);
	for (i = 0; i < services && !err; i++) {
		uint32_t n = counts[i], b;

		if (n == 0) {
			err = -1;
			break;
		}
		for (b = 0; b < n; b++)
			backend_name(s.names[b], ips[start + b], ports[start + b]);
		sort_by_name(&s, n);
		for (b = 0; b < n; b++) {
			const char *name = s.names[s.order[b]];
			uint32_t len = (uint32_t)strlen(name);

			if (b > 0 && strcmp(name, s.names[s.order[b - 1]]) == 0) {
				err = -1; /* names must be unique */
				break;
			}
			s.offset[b] = (uint32_t)(blake2b8(ho, (const uint8_t *)name, len) % size);
			s.skip[b] = (uint32_t)(blake2b8(hs, (const uint8_t *)name, len) % (size - 1) + 1);
		}
		if (!err)
			err = tulle_maglev_fill(s.offset, s.skip, s.order, n, size, out + (size_t)i * size);
		start += n;
	}
out:
	free(s.names);
	free(s.order);
	free(s.tmp);
	free(s.offset);
	free(s.skip);
	return err;
}
