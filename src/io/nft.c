/* nft.c - validate and apply the cluster ruleset with libnftables (see
 * nft.h). A new context per call: contexts cache kernel state, and a
 * stale cache would make a dry run judge against an old ruleset. */
#include <stdio.h>
#include <string.h>
#include <nftables/libnftables.h>
#include "nft.h"
#include "../core/types.h"

/* nft's error text is several lines (message, the offending line, a
 * caret); keep it whole but without the trailing newline. */
static void copy_err(struct nft_ctx *ctx, char *err, size_t len, const char *dflt)
{
	const char *e = nft_ctx_get_error_buffer(ctx);
	snprintf(err, len, "%s", e && e[0] ? e : dflt);
	size_t n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = 0;
}

static struct nft_ctx *ctx_new(bool dry, char *err, size_t err_len)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx) {
		snprintf(err, err_len, "cannot create an nftables context");
		return NULL;
	}
	nft_ctx_set_dry_run(ctx, dry);
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	return ctx;
}

static int run_in(struct nft_ctx *ctx, const char *cmds, char *err, size_t err_len)
{
	int rc = nft_run_cmd_from_buffer(ctx, cmds);
	if (rc != 0)
		copy_err(ctx, err, err_len, "nftables refused the ruleset");
	return rc == 0 ? 0 : TND_EINVAL;
}

static int run(const char *ruleset, bool dry, char *err, size_t err_len)
{
	if (err_len)
		err[0] = 0;
	if (!ruleset || !ruleset[strspn(ruleset, " \t\r\n")])
		return 0;
	struct nft_ctx *ctx = ctx_new(dry, err, err_len);
	if (!ctx)
		return TND_EIO;
	int rc = run_in(ctx, ruleset, err, err_len);
	nft_ctx_free(ctx);
	return rc;
}

int nft_validate(const char *ruleset, char *err, size_t err_len)
{
	return run(ruleset, true, err, err_len);
}

int nft_apply(const char *ruleset, char *err, size_t err_len)
{
	return run(ruleset, false, err, err_len);
}

/* ---- the handoff guard (see nft.h) */

/* The guard's own context, kept for the life of the process: a guard is
 * set on the path of a switchover, and a context costs little to use but
 * milliseconds to create and free (measured: run 0.1-1.5 ms, free 5-14 ms
 * next to a small ruleset). libnftables refreshes its cache when the
 * kernel's ruleset generation moves, so a kept context sees changes. */
static struct nft_ctx *guard_ctx;

int nft_guard_setup(char *err, size_t err_len)
{
	if (err_len)
		err[0] = 0;
	if (!guard_ctx && !(guard_ctx = ctx_new(false, err, err_len)))
		return TND_EIO;
	/* `add` of what exists is no error and changes nothing; the chain
	 * is flushed and refilled so it holds exactly the one rule. */
	return run_in(guard_ctx, "add table inet " NFT_GUARD_TABLE "\n"
		   "add set inet " NFT_GUARD_TABLE " ifaces { type ifname; flags timeout; }\n"
		   "add chain inet " NFT_GUARD_TABLE " forward { type filter hook forward priority filter - 5; policy accept; }\n"
		   "flush chain inet " NFT_GUARD_TABLE " forward\n"
		   "add rule inet " NFT_GUARD_TABLE " forward iifname @ifaces tcp flags & (syn | ack) == syn counter drop\n",
		   err, err_len);
}

void nft_guard_close(void)
{
	if (guard_ctx)
		nft_ctx_free(guard_ctx);
	guard_ctx = NULL;
}

int nft_guard_set(const char *const *ifnames, int n, unsigned timeout_ms, char *err, size_t err_len)
{
	char buf[4096];
	size_t off = 0;

	if (err_len)
		err[0] = 0;
	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		const char *f = ifnames[i];
		if (!f[0] || strlen(f) >= 16 || strpbrk(f, "\"\\")) {
			snprintf(err, err_len, "interface name \"%s\" cannot be quoted for nftables", f);
			return TND_EINVAL;
		}
		/* Add (a no-op if present), delete, add again: the element
		 * exists whatever came before, and a running guard restarts
		 * with the new timeout. Lifting ends with the delete. */
		int w = snprintf(buf + off, sizeof buf - off,
				 "add element inet " NFT_GUARD_TABLE " ifaces { \"%s\" timeout 1s }\n"
				 "delete element inet " NFT_GUARD_TABLE " ifaces { \"%s\" }\n",
				 f, f);
		if (w < 0 || (size_t)w >= sizeof buf - off)
			goto too_long;
		off += (size_t)w;
		if (timeout_ms > 0) {
			w = snprintf(buf + off, sizeof buf - off,
				     "add element inet " NFT_GUARD_TABLE " ifaces { \"%s\" timeout %ums }\n", f,
				     timeout_ms);
			if (w < 0 || (size_t)w >= sizeof buf - off)
				goto too_long;
			off += (size_t)w;
		}
	}
	if (!guard_ctx) {
		snprintf(err, err_len, "the guard was not set up");
		return TND_EIO;
	}
	return run_in(guard_ctx, buf, err, err_len);
too_long:
	snprintf(err, err_len, "too many interfaces for one guard");
	return TND_EINVAL;
}
