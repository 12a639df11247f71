/* www.h - the dashboard's files, built into tandemd (tools/embed.py turns
 * www/ into $(B)/gen/www_data.c at build time). */
#ifndef TND_WWW_H
#define TND_WWW_H

#include <stddef.h>

struct www_file {
	const char *path; /* "/" for index.html, else "/NAME" */
	const char *mime;
	const unsigned char *data; /* NUL-terminated beyond len */
	size_t len;
};

/* The file served at `path`, or NULL. */
const struct www_file *www_find(const char *path);

#endif
