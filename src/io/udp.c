/* udp.c - per-link UDP sockets (see udp.h). */
#include "udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_DSCP_CS6 0xc0 /* TOS byte: DSCP 48 (network control) */
#define UDP_SO_PRIORITY 6 /* TC_PRIO_INTERACTIVE_BULK..CONTROL range */
#define UDP_RCVBUF_BYTES (2 * 1024 * 1024) /* per link socket */

static socklen_t to_sockaddr(const struct tnd_addr *a, uint16_t port,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a->bytes, 16);
		return sizeof *s6;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	memcpy(&s4->sin_addr, a->bytes, 4);
	return sizeof *s4;
}

static void from_sockaddr(const struct sockaddr_storage *ss, struct tnd_addr *a)
{
	memset(a, 0, sizeof *a);
	if (ss->ss_family == AF_INET6) {
		a->family = AF_INET6;
		memcpy(a->bytes, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else {
		a->family = AF_INET;
		memcpy(a->bytes, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

int udp_open(const struct tnd_addr *addr, uint16_t port, int *fd_out)
{
	struct sockaddr_storage ss;
	socklen_t sl = to_sockaddr(addr, port, &ss);
	int one = 1, tos = UDP_DSCP_CS6, prio = UDP_SO_PRIORITY, rcvbuf = UDP_RCVBUF_BYTES, e;
	int fd = socket(addr->family == AF_INET6 ? AF_INET6 : AF_INET,
			SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return TND_ESYS;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		goto fail;
	/* Marking is best effort: a kernel or policy that refuses it still
	 * leaves a working socket. */
	(void)setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio);
	/* Room for bursts: session sync windows and image transfer windows
	 * (up to 4 fetches x 64 chunks of 1.4 KB) arrive back to back, and
	 * the default buffer (rmem_default, ~208 KB) would drop the tail of
	 * them. FORCE (root) passes rmem_max; the plain call is the fallback. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (addr->family == AF_INET6) {
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
	} else {
		(void)setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0)
		goto fail;
	*fd_out = fd;
	return 0;
fail:
	e = errno;
	close(fd);
	errno = e;
	return TND_ESYS;
}

int udp_send(int fd, const struct tnd_addr *to, uint16_t port,
	     const void *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = to_sockaddr(to, port, &ss);
	ssize_t r;

	do
		r = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
			   (struct sockaddr *)&ss, sl);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return TND_ESYS;
	if ((size_t)r != len) {
		errno = EMSGSIZE;
		return TND_ESYS;
	}
	return 0;
}

int udp_recv(int fd, void *buf, size_t cap, size_t *len, struct tnd_addr *from)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	ssize_t r;

	do
		r = recvfrom(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC,
			     (struct sockaddr *)&ss, &sl);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : TND_ESYS;
	if ((size_t)r > cap)
		return TND_ENOSPC;
	*len = (size_t)r;
	if (from)
		from_sockaddr(&ss, from);
	return 1;
}
