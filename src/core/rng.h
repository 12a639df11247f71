/* rng.h - the core's only source of randomness: xorshift64* (Vigna,
 * "An experimental exploration of Marsaglia's xorshift generators",
 * 2016). The state is seeded by the driver (getrandom) or the simulator
 * (its seed), so a simulated run replays exactly. Not for cryptography. */
#ifndef TND_RNG_H
#define TND_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif
