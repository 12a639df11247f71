/* fuzz_netlink.c - libFuzzer target for the netlink link-message parser
 * (nl_link_feed: what the driver does with every RTM_NEWLINK/DELLINK the
 * kernel sends). Malformed messages must be dropped and counted, never
 * read out of bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/nl.h"

static struct nl *nl;

static void on_link(const char *ifname, bool up, void *arg)
{
	(void)arg;
	(void)up;
	if (strnlen(ifname, TND_IFNAME_MAX) >= TND_IFNAME_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!nl) {
		nl = nl_open();
		if (!nl) {
			perror("nl_open");
			abort();
		}
	}
	nl_link_feed(nl, data, size, on_link, NULL);
	return 0;
}
