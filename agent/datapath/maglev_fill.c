/* maglev_fill.c: the Maglev population loop of agent/datapath/maglev.py (_fill), in C.
 *
 * Backend b (0..n-1, in name order) has the preference list (offset[b] + j * skip[b]) % size,
 * j = 0, 1, ...; backends take turns in order, each claiming its next preferred slot still
 * empty, until all `size` slots are taken. out[slot] = order[b] (the caller's index of b).
 * Same table as the Python loop, slot for slot (tests/unit/datapath/test_maglev.py).
 * Returns 0, or -1 on arguments the loop cannot fill (it then writes nothing useful).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
