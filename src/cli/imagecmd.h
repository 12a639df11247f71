/* imagecmd.h - `tandemctl image list|install|activate` (SPEC section 4):
 * the versions installed on a node, and the node-level upgrade (issue 4).
 * The daemon does the work (src/io/slots.h, src/io/supervise.h); this is
 * the client side of {"cmd":"image",...} (src/api/ctl.h).
 *
 *   image list
 *       this node's versions: running, active, previous, whether the
 *       active one is confirmed or still on trial (start N of 3, what it
 *       waits for), the last revert and why, every installed version, and
 *       the version each peer runs
 *   image install FILE [--activate | --restart] [--no-wait] [--wait-s S]
 *       the daemon verifies and extracts the image beside the running
 *       version (refused without 2 x its size free), checks that its
 *       tandemd accepts the running configuration, and installs it;
 *       --activate makes it the version of the next start; --restart also
 *       restarts the node into it at once
 *   image activate VERSION [--restart] [--no-wait] [--wait-s S]
 *       an installed version (the previous one: a manual rollback)
 *
 * After --restart, tandemctl waits (unless --no-wait) until the node runs
 * the new version and has confirmed it healthy, or has reverted it (exit
 * 1 with the reason), at most --wait-s seconds (default: the hold timer
 * plus IMAGECMD_WAIT_MARGIN_S), and reports the restart and confirmation
 * times. Exit codes: 0 done, 1 failed (a bad image, a full disk, a
 * revert), 2 usage, 3 refused (not enough space, a version on trial, the
 * active version). */
#ifndef TND_CLI_IMAGECMD_H
#define TND_CLI_IMAGECMD_H

#include <stdbool.h>

#define IMAGECMD_REPLY_TIMEOUT_S 330 /* the daemon's install helper may run 300 s */
#define IMAGECMD_WAIT_MARGIN_S 30
#define IMAGECMD_POLL_MS 100

/* argv[0] is the word after "image": true for list, install, activate. */
bool imagecmd_handles(int argc, char **argv);
/* Run it against the daemon at `socket`; returns the exit code. */
int imagecmd_run(const char *socket, bool json, int argc, char **argv);
/* The usage lines of these commands. */
const char *imagecmd_usage(void);

#endif
