/* http.h - the HTTP API, event stream, metrics and dashboard (docs/api.md).
 *
 * Owns: the libmicrohttpd daemon (driven by tandemd's event loop through
 * its epoll descriptor and a timer of its own, single-threaded like the
 * rest of the daemon), the bearer token, the Server-Sent Events streams,
 * and the answers' HTTP statuses. Requests are parsed by route.c and
 * handled by the control socket's dispatcher (ctl_request), so the API
 * and tandemctl answer alike. */
#ifndef TND_HTTP_H
#define TND_HTTP_H

#include <stddef.h>
#include "ctl.h"
#include "../conf/conf.h"
#include "../io/log.h"
#include "../io/loop.h"

#define HTTP_CONNECTIONS_MAX 64
#define HTTP_STREAMS_MAX 16
#define HTTP_STREAM_BUF_MAX_BYTES (256 * 1024) /* a stream further behind is dropped */
#define HTTP_TIMEOUT_S 10                      /* a silent connection is closed after this */
#define HTTP_BODY_TIMEOUT_S 8                  /* a body still arriving after this: 408 */
#define HTTP_KEEPALIVE_MS 15000                /* the stream's comment line */
#define HTTP_TOKEN_MIN_CHARS 16
#define HTTP_PROBE_MAX_BYTES (64 * 1024)
#define HTTP_IMAGES_MAX 200

struct http_ops {
	/* The Prometheus text of this node (malloc'd, *len set), or NULL. */
	char *(*metrics)(void *arg, size_t *len);
	void *arg;
};

struct http;

/* Listen on conf->api_http (HTTPS when conf->api_tls_cert is set). NULL
 * with a sentence in err when it cannot. */
struct http *http_open(const struct tnd_conf *conf, struct loop *loop, struct ctl *ctl,
		       const struct http_ops *ops, char *err, size_t err_len);
/* Answer what still waits (503), close every connection and the socket. */
void http_close(struct http *h);
/* Stream one event to every open event stream. */
void http_publish(struct http *h, const struct log_entry *e);
/* The address it listens on ("127.0.0.1:8080"), for the status. */
const char *http_address(const struct http *h);

#endif
