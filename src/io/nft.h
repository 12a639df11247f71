/* nft.h - the cluster-managed nftables ruleset (libnftables).
 *
 * Owns: validating a ruleset text without changing the kernel (nftables
 * dry run: parsed and checked against the kernel's cache, nothing
 * committed) and applying one atomically: libnftables sends the whole
 * buffer as one netlink batch, which the kernel commits as one
 * transaction or not at all.
 *
 * The rule for operators: Tandem owns exactly the tables its ruleset
 * defines. A ruleset should begin by clearing what it owns, for example
 *     table inet tandem
 *     delete table inet tandem
 *     table inet tandem { ... }
 * (or `flush ruleset` when the cluster owns the whole firewall); since the
 * whole text is one transaction, traffic never sees the moment between the
 * delete and the new table. */
#ifndef TND_NFT_H
#define TND_NFT_H

#include <stddef.h>

/* 0 when the ruleset is valid; TND_EINVAL with nft's own message (which
 * locates the problem: "FILE:LINE:COL-COL: Error: ...") in err. */
int nft_validate(const char *ruleset, char *err, size_t err_len);
/* Apply atomically. 0, or TND_EINVAL/TND_EIO with the message in err;
 * on an error nothing changed. An empty ruleset is a no-op. */
int nft_apply(const char *ruleset, char *err, size_t err_len);

#endif
