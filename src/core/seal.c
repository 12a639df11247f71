/* seal.c - authenticated encryption of control packets (see seal.h).
 *
 * libsodium's XChaCha20-Poly1305-IETF: its 192-bit nonce lets us derive the
 * nonce from (cluster, sender, incarnation, sequence) without any risk of a
 * birthday collision and without sending it. */
#include <string.h>
#include <sodium.h>
#include "seal.h"

static const char seal_context[] = "tandem control v1";

int seal_key_derive(struct seal_key *key, const uint8_t *secret, size_t len)
{
	if (len < SEAL_SECRET_MIN)
		return TND_EINVAL;
	if (crypto_generichash(key->k, sizeof(key->k), secret, len,
			       (const uint8_t *)seal_context,
			       sizeof(seal_context) - 1) != 0)
		return TND_EINVAL;
	return 0;
}

static void seal_nonce(const struct wire_hdr *h,
		       uint8_t n[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
	memset(n, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	n[0] = h->cluster_id;
	n[1] = h->sender;
	wire_put64(n + 8, h->incarnation);
	wire_put64(n + 16, h->seq);
}

int seal_packet(const struct seal_key *key, const uint8_t *plain,
		size_t plain_len, uint8_t *out, size_t cap, size_t *out_len)
{
	struct wire_hdr h;
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen = 0;

	if (plain_len < WIRE_HDR_LEN)
		return TND_EINVAL;
	size_t body_len = plain_len - WIRE_HDR_LEN;
	if (body_len + WIRE_TAG_LEN > UINT16_MAX ||
	    cap < plain_len + WIRE_TAG_LEN)
		return TND_ENOSPC;
	/* Decode only the fixed fields: body_len is rewritten below. */
	if (plain_len < 8 || wire_get32(plain) != WIRE_MAGIC)
		return TND_EINVAL;
	h.version = plain[4];
	h.cluster_id = plain[5];
	h.sender = plain[6];
	h.type = plain[7];
	h.incarnation = wire_get64(plain + 8);
	h.seq = wire_get64(plain + 16);
	h.body_len = (uint16_t)(body_len + WIRE_TAG_LEN);
	wire_hdr_encode(&h, out);
	seal_nonce(&h, nonce);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(
		    out + WIRE_HDR_LEN, &clen, plain + WIRE_HDR_LEN, body_len,
		    out, WIRE_HDR_LEN, NULL, nonce, key->k) != 0)
		return TND_EINVAL;
	*out_len = WIRE_HDR_LEN + (size_t)clen;
	return 0;
}

int seal_open(const struct seal_key *key, uint8_t cluster_id,
	      const uint8_t *pkt, size_t len, struct wire_hdr *hdr,
	      uint8_t *body, size_t body_cap, size_t *body_len)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long mlen = 0;

	if (wire_hdr_decode(pkt, len, hdr) != 0)
		return TND_EINVAL;
	if (hdr->body_len != len - WIRE_HDR_LEN || hdr->body_len < WIRE_TAG_LEN)
		return TND_EINVAL;
	if (hdr->cluster_id != cluster_id)
		return TND_ECLUSTER;
	if (hdr->version < WIRE_PROTO_MIN)
		return TND_EVERSION;
	if (body_cap < (size_t)hdr->body_len - WIRE_TAG_LEN)
		return TND_ENOSPC;
	seal_nonce(hdr, nonce);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    body, &mlen, NULL, pkt + WIRE_HDR_LEN, hdr->body_len,
		    pkt, WIRE_HDR_LEN, nonce, key->k) != 0)
		return TND_EAUTH;
	*body_len = (size_t)mlen;
	return 0;
}
