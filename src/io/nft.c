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

static int run(const char *ruleset, bool dry, char *err, size_t err_len)
{
	if (err_len)
		err[0] = 0;
	if (!ruleset || !ruleset[strspn(ruleset, " \t\r\n")])
		return 0;
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx) {
		snprintf(err, err_len, "cannot create an nftables context");
		return TND_EIO;
	}
	nft_ctx_set_dry_run(ctx, dry);
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	int rc = nft_run_cmd_from_buffer(ctx, ruleset);
	if (rc != 0)
		copy_err(ctx, err, err_len, "nftables refused the ruleset");
	nft_ctx_free(ctx);
	return rc == 0 ? 0 : TND_EINVAL;
}

int nft_validate(const char *ruleset, char *err, size_t err_len)
{
	return run(ruleset, true, err, err_len);
}

int nft_apply(const char *ruleset, char *err, size_t err_len)
{
	return run(ruleset, false, err, err_len);
}
