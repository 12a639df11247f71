/* udp.h - one UDP socket per local link for control traffic.
 *
 * Owns: the sockets' options (bound to the link's own address so replies
 * and heartbeats leave on the right path, non-blocking, close-on-exec,
 * DSCP CS6 like other network-control protocols, RFC 4594 section 3.1)
 * and the conversion between struct tnd_addr and sockaddr. */
#ifndef TND_UDP_H
#define TND_UDP_H

#include <stddef.h>
#include <stdint.h>
#include "../core/types.h"

/* Open a socket bound to (addr, port). 0 or TND_ESYS (errno kept). */
int udp_open(const struct tnd_addr *addr, uint16_t port, int *fd_out);
/* Send one datagram. 0, or TND_ESYS with errno (EAGAIN included: the
 * caller counts it as a send error; heartbeats are periodic anyway). */
int udp_send(int fd, const struct tnd_addr *to, uint16_t port,
	     const void *buf, size_t len);
/* Receive one datagram. 1 with *len and *from set, 0 when nothing is
 * pending, TND_ENOSPC when it was longer than cap (dropped), TND_ESYS. */
int udp_recv(int fd, void *buf, size_t cap, size_t *len, struct tnd_addr *from);

#endif
