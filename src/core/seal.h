/* seal.h - authenticated encryption of control packets with the cluster key.
 *
 * XChaCha20-Poly1305 (libsodium, crypto_aead_xchacha20poly1305_ietf) with
 * the 26-byte wire header as associated data. The 24-byte nonce is derived
 * from the header: cluster id, sender, incarnation and sequence, which are
 * unique per key as long as a sender never reuses a sequence number within
 * an incarnation. The traffic key is BLAKE2b-256 of the key file's bytes,
 * keyed by a fixed context string, so the file itself is never the key.
 *
 * Pure computation: no I/O. Replay protection is in replay.h. */
#ifndef TND_SEAL_H
#define TND_SEAL_H

#include "types.h"
#include "wire.h"

#define SEAL_KEY_LEN 32
#define SEAL_SECRET_MIN 32 /* bytes a key file must hold */

struct seal_key {
	uint8_t k[SEAL_KEY_LEN];
};

/* Derive the traffic key from the key file's contents. TND_EINVAL when
 * the secret is shorter than SEAL_SECRET_MIN. */
int seal_key_derive(struct seal_key *key, const uint8_t *secret, size_t len);

/* `plain` holds header (hdr->body_len is ignored and set here) followed by
 * `body_len` bytes of TLVs at plain+WIRE_HDR_LEN. Writes the packet into
 * out (cap >= WIRE_HDR_LEN + body_len + WIRE_TAG_LEN). */
int seal_packet(const struct seal_key *key, const uint8_t *plain,
		size_t plain_len, uint8_t *out, size_t cap, size_t *out_len);

/* Decode the header, check magic and cluster id, authenticate and decrypt.
 * On success the TLVs are in body[0..*body_len). Errors: TND_EINVAL
 * (malformed), TND_ECLUSTER, TND_EVERSION, TND_EAUTH. */
int seal_open(const struct seal_key *key, uint8_t cluster_id,
	      const uint8_t *pkt, size_t len, struct wire_hdr *hdr,
	      uint8_t *body, size_t body_cap, size_t *body_len);

#endif
