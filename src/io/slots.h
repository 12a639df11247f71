/* slots.h - the software versions kept in the state directory (SPEC
 * section 2 "the version active in D", section 5 "Images": A/B).
 *
 * Owns the layout below STATE_DIR and every write to it that concerns
 * versions:
 *
 *   STATE_DIR/boot.json                which version starts (core/boot.h)
 *   STATE_DIR/versions/<V>/bin/tandemd the daemon of version V
 *   STATE_DIR/versions/<V>/bin/tandemctl
 *   STATE_DIR/versions/<V>/hooks/...   whatever the image carried
 *   STATE_DIR/versions/<V>/version.json   what V is: the image's manifest
 *                                      fields, or "adopted" for a started
 *                                      binary, and when it was installed
 *   STATE_DIR/versions/.incoming-<pid> an install in progress
 *
 * Why this shape. A version is a directory that appears complete or not at
 * all: it is filled under a dot-name and renamed into place (rename(2) is
 * atomic, then the directory is fsync'd), so a crash or a full disk in the
 * middle of an install leaves the running version and boot.json untouched
 * and at worst a dot-directory that the next start removes. boot.json is
 * the single switch between versions, replaced atomically (state.h), so
 * "which version starts" is always exactly one answer. The running binary
 * is never the file in the build tree or in /usr: on its first start a node
 * copies the started binary (and the tandemctl beside it) into
 * versions/<its version>, so a rollback never depends on a file somebody
 * may have replaced since (the A/B promise: "rollback never needs the
 * image again"). At most three versions are kept: active, previous, and
 * one installed but not yet activated; an activation removes the rest.
 *
 * Installing runs in a helper process (`tandemd --image-install-helper`,
 * slots_helper_main) that the daemon starts without waiting for it: the
 * extraction, digest checks and the new binary's --check-config take
 * longer than a heartbeat, and the daemon must keep answering its peers
 * meanwhile. The helper is cloned with no exit signal (clone3, exit_signal
 * 0, CLONE_PIDFD): its end is seen through its pidfd, and the daemon's
 * SIGCHLD reaping of hooks (waitpid(-1), which does not wait for such
 * "clone" children) never takes it. It prints one JSON object, the
 * result. */
#ifndef TND_SLOTS_H
#define TND_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>
#include "../core/boot.h"

#define SLOTS_BOOT_FILE "boot.json"
#define SLOTS_VERSIONS_DIR "versions"
#define SLOTS_INFO_FILE "version.json"
#define SLOTS_HELPER_ARG "--image-install-helper"
/* The image file must fit twice in the free space of the state dir
 * (SPEC section 5's pre-check): once extracted, once as margin for the
 * running system. */
#define SLOTS_FREE_FACTOR 2
#define SLOTS_CHECK_TIMEOUT_MS 30000   /* the new binary's --check-config */
#define SLOTS_HELPER_OUT_MAX 8192      /* bytes of the helper's answer */
#define SLOTS_VERSIONS_MAX 16          /* listed; more are an operator's doing */

/* STATE_DIR/versions/<version>[/rel] into out. TND_EINVAL when the
 * version is not a valid version name (boot_version_ok), TND_ENOSPC when
 * the path does not fit. */
int slots_path(const char *dir, const char *version, const char *rel, char *out, size_t len);

/* Read STATE_DIR/boot.json. TND_ENOENT when there is none (first start);
 * TND_EINVAL with why when it does not parse. */
int slots_load(const char *dir, struct boot_state *b, char *why, size_t why_len);
/* Replace it atomically and durably. TND_ESYS (errno kept). */
int slots_save(const char *dir, const struct boot_state *b);

/* Make the started binary (/proc/self/exe, and the tandemctl in its
 * directory if there is one) the files of `version`, unless they already
 * are byte for byte. *changed tells whether anything was written. */
int slots_adopt(const char *dir, const char *version, bool *changed, char *why, size_t why_len);

/* A start: read boot.json, or on the first start adopt the started
 * binary as `own_version`, active and confirmed, and write boot.json.
 * When the active version is `own_version`, its files are refreshed from
 * the started binary if they differ (a rebuild under the same version
 * number must not keep starting the old build). Leftovers of interrupted
 * installs are removed. */
int slots_boot(const char *dir, const char *own_version, struct boot_state *b,
	       char *why, size_t why_len);

/* Remove every version directory that is neither active, previous nor
 * `keep` (NULL: none), and every leftover dot-directory. Returns the
 * number removed, or a negative code. */
int slots_gc(const char *dir, const struct boot_state *b, const char *keep);

/* Whether versions/<version>/bin/tandemd exists and is executable. */
bool slots_installed(const char *dir, const char *version);

/* Every installed version with its version.json and its role (boot.h
 * boot_role), newest first: a new JSON array. */
json_t *slots_list_json(const char *dir, const struct boot_state *b);

/* Run `tandemd --check-config --config conf` (bounded by
 * SLOTS_CHECK_TIMEOUT_MS). 0 when it exits 0; TND_EINVAL with its first
 * lines of output in why otherwise. */
int slots_check_config(const char *tandemd, const char *conf, char *why, size_t why_len);

/* rm -rf, bounded to the tree under path (no symlink is followed). */
int slots_rmtree(const char *path);

/* Start the helper: `/proc/self/exe --image-install-helper OP ARGS...`
 *   install STATE_DIR IMAGE TRUSTED_KEYS_DIR CHECK_CONF
 *   check   STATE_DIR VERSION CHECK_CONF
 *   precheck STATE_DIR IMAGE TRUSTED_KEYS_DIR CHECK_CONF IMPORT(0|1)
 *           verify, extract to a scratch dir, --check-config, remove it;
 *           with IMPORT=1 also copy the image to STATE_DIR/images/<hex>.img
 * with its stdout on *out_fd (non-blocking, close-on-exec) and its end
 * on *pidfd (readable once it exited). */
int slots_helper_spawn(char *const args[], pid_t *pid, int *pidfd, int *out_fd);
/* Collect a helper that ended (or kill it first with `kill`): its answer
 * (a new JSON object; a missing or broken answer is turned into a failure
 * naming the exit status). Closes both descriptors. */
json_t *slots_helper_reap(pid_t pid, int pidfd, int out_fd, bool kill_it);

/* main() of the helper; argv[1] is SLOTS_HELPER_ARG. */
int slots_helper_main(int argc, char **argv);

#endif
