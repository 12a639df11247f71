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

/* The handoff guard. In the moments after a node gives up a group, hosts
 * whose neighbour cache still points at it send it new connections; it
 * would forward and NAT them with state the new primary never sees, and
 * the connection would stall. The guard is a table of Tandem's own, apart
 * from the cluster ruleset:
 *     table inet tandemd-handoff {
 *         set ifaces { type ifname; flags timeout; }
 *         chain forward { type filter hook forward priority filter - 5;
 *             iifname @ifaces tcp flags & (syn | ack) == syn counter drop } }
 * A dropped SYN is sent again by its host after 1 s, by then to the new
 * primary. The match is stateless on purpose: a `ct state new` match
 * would switch conntrack on in every namespace tandemd runs in, firewall
 * or not. (A new UDP flow loses at most its first exchange the same way.)
 * The set's elements expire in the kernel, so a guard outlives neither its
 * timeout nor a daemon that died. */
#define NFT_GUARD_TABLE "tandemd-handoff"
/* Create the table, set and chain if missing, keeping the set's elements
 * (a restarted daemon keeps the guards of the one before). Again after
 * the cluster ruleset was applied: it may have flushed the whole ruleset. */
int nft_guard_setup(char *err, size_t err_len);
/* Free the guard's nftables context (the kernel objects stay). */
void nft_guard_close(void);
/* Guard interfaces ifnames[0..n) for timeout_ms from now (restarting a
 * running guard), or lift their guards (timeout_ms 0; no error if there
 * were none). One transaction. TND_EINVAL for a name nft cannot quote. */
int nft_guard_set(const char *const *ifnames, int n, unsigned timeout_ms, char *err, size_t err_len);

#endif
