/* fuzz_cfgchange.c - libFuzzer target for the configuration-change path a
 * proposed document takes in tandemd (cfg_check in src/main.c, minus the
 * nftables dry run, which needs the kernel): the blob decoder
 * (cfgsync_doc_decode), then, for a document built from the input, the
 * YAML parser (conf_parse) and the in-place change rules
 * (cfgsync_check_change) against a fixed running configuration.
 *
 * Input: the raw bytes are first given to the decoder as a blob (as if a
 * peer had sent them); then they are split at the first NUL into YAML
 * text and ruleset text, encoded, decoded again (must round-trip), parsed
 * and checked. Nothing may crash, leak or read out of bounds, and a
 * refusal must come with a sentence. */
#include <stdlib.h>
#include <string.h>
#include "conf/conf.h"
#include "core/cfgsync.h"

static const char base_yaml[] =
	"cluster: {name: edge1, id: 1, key_file: /etc/tandem/cluster.key, port: 7400}\n"
	"nodes:\n"
	"  - {name: gw1, links: [203.0.113.11, 198.51.100.11]}\n"
	"  - {name: gw2, links: [203.0.113.12, 198.51.100.12]}\n"
	"groups:\n"
	"  - {id: 0, priority: {gw1: 200, gw2: 100}}\n"
	"  - id: 1\n"
	"    priority: {gw1: 200, gw2: 100}\n"
	"    vips: [{address: 192.0.2.1/24, interface: lan0}]\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tnd_conf base, nc;
	static struct conf_diags dg;
	static int ready;
	struct cfgsync_text t, back;
	uint8_t *blob = NULL;
	size_t len = 0;
	char why[CFGSYNC_WHY_LEN];

	if (!ready) {
		if (conf_parse("base", base_yaml, sizeof base_yaml - 1, &base, &dg) != 0)
			abort();
		ready = 1;
	}
	(void)cfgsync_doc_decode(data, size, &t);

	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	size_t ylen = strlen(text);
	t.yaml = text;
	t.yaml_len = ylen;
	t.ruleset = ylen < size ? text + ylen + 1 : "";
	t.ruleset_len = ylen < size ? strlen(text + ylen + 1) : 0;
	if (cfgsync_doc_encode(&t, &blob, &len) == 0) {
		if (cfgsync_doc_decode(blob, len, &back) != 0 || back.yaml_len != t.yaml_len ||
		    back.ruleset_len != t.ruleset_len ||
		    memcmp(back.yaml, t.yaml, t.yaml_len) != 0 ||
		    memcmp(back.ruleset, t.ruleset, t.ruleset_len) != 0)
			abort(); /* encode/decode must round-trip */
		if (conf_parse("proposed", back.yaml, back.yaml_len, &nc, &dg) == 0 && dg.n == 0) {
			why[0] = '\0';
			int r = cfgsync_check_change(&base, &nc, "gw1", why, sizeof why);
			if (r != 0 && (r != TND_EREFUSED || !why[0]))
				abort(); /* a refusal says why */
		}
	}
	free(blob);
	free(text);
	return 0;
}
