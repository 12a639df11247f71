/* image.h (cli) - `tandemctl image keygen|build|verify` (SPEC section 4):
 * signing keys and software images, on this machine, with no daemon.
 *
 *   image keygen --out KEY
 *       a new Ed25519 key pair: KEY (secret, 0600) and KEY.pub; refuses
 *       to overwrite either
 *   image build --version V --from DIR --key KEY --out FILE
 *               [--min-upgrade-from V] [--proto MIN..MAX]
 *       DIR holds bin/tandemd, bin/tandemctl and optionally hooks/.
 *       --min-upgrade-from defaults to MAJOR.0.0 of V (any release of
 *       the same major version upgrades in service). The protocol range
 *       and the version are asked from DIR/bin/tandemd --version, which
 *       must say V; --proto MIN..MAX gives the range instead and skips
 *       that check (binaries that cannot run on the build host). The
 *       build time is $SOURCE_DATE_EPOCH when set (reproducible builds),
 *       else now.
 *   image verify FILE [--trusted-keys DIR | --config FILE]
 *       the whole image against the trusted keys: DIR, else
 *       upgrade.trusted_keys of the configuration FILE (a relative path
 *       taken from the file's directory, like firewall.ruleset), else of
 *       /etc/tandem/tandem.yaml when it exists, else
 *       /etc/tandem/trusted.d. Prints the manifest (version, oldest
 *       version it upgrades from in service, protocol range, build time,
 *       signing key, files); exit 1 with the reason when the image is bad.
 *
 * With --json each prints one JSON object: {"ok":true,...} or
 * {"ok":false,"code":"failed","error":REASON}. Exit codes: 0 done,
 * 1 failed (a bad image, a key that cannot be written), 2 usage. */
#ifndef TND_CLI_IMAGE_H
#define TND_CLI_IMAGE_H

#include <stdbool.h>

#define IMAGE_CLI_DEFAULT_CONFIG "/etc/tandem/tandem.yaml"

/* argv[0] is the word after "image": true for keygen, build, verify. */
bool image_cli_handles(int argc, char **argv);
/* Run it; returns the exit code. */
int image_cli_run(int argc, char **argv, bool json);
/* The usage lines of these commands. */
const char *image_cli_usage(void);

#endif
