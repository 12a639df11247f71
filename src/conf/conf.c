/* conf.c - read, validate and print tandem.yaml (SPEC section 3).
 *
 * Owns: the YAML-to-struct tnd_conf translation, every validation rule of
 * the configuration, the diagnostics ("FILE:LINE:COL: message", sorted by
 * position, all of them up to CONF_DIAGS_MAX) and the canonical printed
 * form. Follows YAML 1.2 (core schema) as parsed by libfyaml 0.7.12.
 *
 * Why parser events and not the fy_document API: libfyaml 0.7.12 exposes a
 * position only for scalar tokens of a document node (fy_node_get_start_mark
 * came in a later release), and an empty value or a mapping would then have
 * no line:col at all. fy_event_start_mark() is public in 0.7.12 and exact
 * for every node, so conf.c builds its own small tree from the events (in
 * an arena freed at the end of conf_parse) and validates that.
 *
 * Stricter than YAML on purpose: integers and booleans must be plain
 * scalars (port: "7400" is a string, not a number), YAML 1.1 spellings
 * (yes/no, 0x10, 010) are rejected rather than guessed, aliases and tags
 * are refused, duplicate keys are errors, and only one document is read. A
 * configuration is the cluster's contract; a surprising reading of it is
 * worse than an error. */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CONF_TEXT_MAX_BYTES (1024 * 1024) /* larger is surely not a config */
#define CONF_DEPTH_MAX 16      /* nesting levels; the schema needs 5 */
#define CONF_ARENA_BLOCK_BYTES 16384
#define CONF_SHOW_MAX 40       /* bytes of a bad value quoted in a message */
#define CONF_PATH_LEN 160      /* "groups[12].vips[3].address" and the like */
#define CONF_NAME_CHARS_MAX 63 /* cluster and node names */
/* Keys looked at in one mapping: the schema's largest has 7, a priority
 * map one per node. Bounding it keeps the duplicate check's quadratic
 * cost trivial whatever the file holds. */
#define CONF_MAP_KEYS_MAX 64

#define DEF_PORT 7400
#define DEF_HEARTBEAT_MS 100
#define DEF_DEAD_AFTER 3
#define DEF_TRUSTED_KEYS "/etc/tandem/trusted.d"
#define DEF_HOLD_TIMER_S 900
#define DEF_SYNC_TIMEOUT_S 300
#define DEF_CPU_MAX_PERCENT 80
#define DEF_TOKEN_FILE "/etc/tandem/api.token"
#define DEF_IMAGES_DIR "/var/lib/tandem/incoming"
#define DEF_GROUP0_PRIORITY 100
#define DAY_S 86400

/* ------------------------------------------------------------------ */
/* Diagnostics: kept sorted by position at the end, so an operator reads
 * them in file order. When more than CONF_DIAGS_MAX arise, the ones
 * furthest down the file are the ones counted in n_dropped. */

struct diag_pos {
	int line, col;
	unsigned seq; /* order of discovery breaks ties */
};

struct diag_ctx {
	const char *name;
	struct conf_diags *d;
	struct diag_pos pos[CONF_DIAGS_MAX];
	unsigned seq;
};

static bool diag_pos_before(const struct diag_pos *a, const struct diag_pos *b)
{
	if (a->line != b->line)
		return a->line < b->line;
	if (a->col != b->col)
		return a->col < b->col;
	return a->seq < b->seq;
}

static void diag_vadd(struct diag_ctx *x, int line, int col, const char *fmt,
		      va_list ap)
{
	struct diag_pos np = {line, col, x->seq++};
	int slot, k;

	if (x->d->n < CONF_DIAGS_MAX) {
		slot = x->d->n++;
	} else {
		int last = 0;
		for (int i = 1; i < CONF_DIAGS_MAX; i++)
			if (diag_pos_before(&x->pos[last], &x->pos[i]))
				last = i;
		x->d->n_dropped++;
		if (!diag_pos_before(&np, &x->pos[last]))
			return;
		slot = last;
	}
	/* Long file names or values are cut, never overflow. */
	k = snprintf(x->d->msg[slot], CONF_DIAG_LEN, "%s:%d:%d: ", x->name, line,
		     col);
	if (k >= 0 && k < CONF_DIAG_LEN)
		vsnprintf(x->d->msg[slot] + k, (size_t)(CONF_DIAG_LEN - k), fmt, ap);
	x->pos[slot] = np;
}

__attribute__((format(printf, 4, 5)))
static void diag_add(struct diag_ctx *x, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(x, line, col, fmt, ap);
	va_end(ap);
}

/* Insertion sort: at most CONF_DIAGS_MAX entries, once per parse. */
static void diag_sort(struct diag_ctx *x)
{
	char tmp[CONF_DIAG_LEN];

	for (int i = 1; i < x->d->n; i++) {
		struct diag_pos p = x->pos[i];
		int j = i;

		if (!diag_pos_before(&p, &x->pos[i - 1]))
			continue;
		memcpy(tmp, x->d->msg[i], CONF_DIAG_LEN);
		while (j > 0 && diag_pos_before(&p, &x->pos[j - 1])) {
			x->pos[j] = x->pos[j - 1];
			memcpy(x->d->msg[j], x->d->msg[j - 1], CONF_DIAG_LEN);
			j--;
		}
		x->pos[j] = p;
		memcpy(x->d->msg[j], tmp, CONF_DIAG_LEN);
	}
}

/* ------------------------------------------------------------------ */
/* Arena: every tree node and scalar text of one parse, freed at once. */

struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

struct arena {
	struct arena_blk *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_blk *b = a->head;

	n = (n + 15) & ~(size_t)15;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > CONF_ARENA_BLOCK_BYTES ? n : CONF_ARENA_BLOCK_BYTES;

		b = malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	void *p = b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_blk *b = a->head;

		a->head = b->next;
		free(b);
	}
}

/* ------------------------------------------------------------------ */
/* The tree built from parser events. */

enum ytype {
	Y_NULL,   /* plain empty, ~ or null */
	Y_SCALAR,
	Y_MAP,
	Y_SEQ,
	Y_ALIAS,  /* refused when seen; kept so no second message follows */
};

struct ynode {
	enum ytype type;
	int line, col;     /* 1-based */
	bool plain;        /* plain (unquoted) scalar */
	const char *text;  /* scalar text, NUL-terminated (may hold NULs) */
	size_t len;
	struct ynode *val; /* mapping key: its value */
	struct ynode *first, *last; /* mapping: keys; sequence: items */
	struct ynode *next;
	int n;             /* number of children */
};

/* Path of a setting in messages, "groups[1].vips[0].address"; cut at
 * CONF_PATH_LEN, which only a pathological key could reach. */
__attribute__((format(printf, 2, 3)))
static void sub_path(char *dst, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, CONF_PATH_LEN, fmt, ap);
	va_end(ap);
}

struct pctx {
	struct diag_ctx dx;
	struct arena ar;
	struct tnd_conf *c;

	/* Where each node's parts were found, for checks across entries. */
	int n_node_ent; /* node entries looked at (<= TND_NODES_MAX) */
	struct ynode *node_name_n[TND_NODES_MAX];
	bool node_name_ok[TND_NODES_MAX];
	struct ynode *links_n[TND_NODES_MAX];
	bool links_count_ok[TND_NODES_MAX];
	struct ynode *link_n[TND_NODES_MAX][TND_LINKS_MAX];
	bool link_ok[TND_NODES_MAX][TND_LINKS_MAX];

	int n_group_ent;
	struct gtmp {
		struct tnd_group_conf g;
		struct ynode *ent, *id_n, *prio_n, *vips_n;
		bool id_ok, prio_ok, keep;
		struct ynode *vip_n[TND_VIPS_MAX];
		bool vip_ok[TND_VIPS_MAX];
	} grp[TND_GROUPS_MAX];
};

__attribute__((format(printf, 3, 4)))
static void perr(struct pctx *p, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(&p->dx, at ? at->line : 1, at ? at->col : 1, fmt, ap);
	va_end(ap);
}

static bool is_null_text(const char *s, size_t len)
{
	return len == 0 || (len == 1 && s[0] == '~') ||
	       (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
			     !memcmp(s, "NULL", 4)));
}

/* Attach a fresh node to the collection on top of the stack. */
struct frame {
	struct ynode *n;
	struct ynode *key; /* mapping: key waiting for its value */
};

static void tree_attach(struct frame *top, struct ynode *n)
{
	struct ynode *c = top->n;

	if (c->type == Y_MAP && top->key) {
		top->key->val = n;
		top->key = NULL;
		return;
	}
	if (c->last)
		c->last->next = n;
	else
		c->first = n;
	c->last = n;
	c->n++;
	if (c->type == Y_MAP)
		top->key = n;
}

static void tree_syntax_errors(struct pctx *p, struct fy_diag *diag, bool failed)
{
	struct fy_diag_error *e;
	void *it = NULL;
	bool any = false;

	while ((e = fy_diag_errors_iterate(diag, &it)) != NULL) {
		if (e->type < FYET_ERROR)
			continue;
		diag_add(&p->dx, e->line > 0 ? e->line : 1,
			 e->column > 0 ? e->column : 1, "syntax error: %s",
			 e->msg ? e->msg : "malformed YAML");
		any = true;
	}
	if (failed && !any)
		diag_add(&p->dx, 1, 1, "syntax error: malformed YAML");
}

static void diag_sink(struct fy_diag *diag, void *user, const char *buf,
		      size_t len)
{
	/* libfyaml must never print; errors are collected and re-emitted as
	 * FILE:LINE:COL diagnostics by tree_syntax_errors(). */
}

static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);

/* YAML streams are printable Unicode (YAML 1.2 section 5.1). libfyaml
 * 0.7.12 passes some invalid bytes through silently, so check first and
 * point at the first bad byte (columns count bytes, like libfyaml's). */
static bool text_scan(struct pctx *p, const char *text, size_t len)
{
	const unsigned char *u = (const unsigned char *)text;
	int line = 1;
	size_t bol = 0;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_seq(u + i, len - i, &cp);
		int col = (int)(i - bol) + 1;

		if (n == 0) {
			diag_add(&p->dx, line, col, "invalid UTF-8 (byte 0x%02x)", u[i]);
			return false;
		}
		if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
		    cp == 0x7f || cp == 0xfffe || cp == 0xffff) {
			diag_add(&p->dx, line, col,
				 "character U+%04X is not allowed in YAML", (unsigned)cp);
			return false;
		}
		i += n;
		if (cp == '\n' || (cp == '\r' && (i >= len || u[i] != '\n'))) {
			line++;
			bol = i;
		}
	}
	return true;
}

/* Unfold the content of a single-quoted scalar (YAML 1.2 section 7.3.2):
 * '' is a quote; a line break with the blanks around it is one space, or
 * one newline per empty line that follows it. */
static size_t sq_unfold(const char *in, size_t len, char *out)
{
	size_t o = 0, keep = 0; /* keep: end of the line's last non-blank */

	for (size_t i = 0; i < len;) {
		char ch = in[i];

		if (ch == '\'' && i + 1 < len && in[i + 1] == '\'') {
			out[o++] = '\'';
			keep = o;
			i += 2;
		} else if (ch == '\n' || ch == '\r') {
			int empty = 0;

			o = keep; /* drop blanks before the break */
			for (;;) {
				if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
					i++;
				i++;
				while (i < len && (in[i] == ' ' || in[i] == '\t'))
					i++;
				if (i < len && (in[i] == '\n' || in[i] == '\r')) {
					empty++;
					continue;
				}
				break;
			}
			if (empty == 0)
				out[o++] = ' ';
			while (empty-- > 0)
				out[o++] = '\n';
			keep = o;
		} else {
			out[o++] = ch;
			i++;
			if (ch != ' ' && ch != '\t')
				keep = o;
		}
	}
	return o;
}

/* The text of a scalar token, NUL-terminated, in the arena. libfyaml
 * 0.7.12 gets runs of '' escapes in single-quoted scalars wrong (and
 * leaks while doing it), so those are unfolded here from the source; the
 * token's marks span the content between the quotes. */
static char *scalar_text(struct pctx *p, struct fy_token *tok,
			 enum fy_node_style st, const char *src, size_t src_len,
			 size_t *out_len)
{
	const struct fy_mark *a = fy_token_start_mark(tok);
	const struct fy_mark *b = fy_token_end_mark(tok);
	const char *t;
	size_t tl = 0;
	char *copy;

	if (st == FYNS_SINGLE_QUOTED && a && b && a->input_pos <= b->input_pos &&
	    b->input_pos <= src_len) {
		size_t rl = b->input_pos - a->input_pos;

		copy = arena_alloc(&p->ar, rl + 1);
		if (!copy)
			return NULL;
		*out_len = sq_unfold(src + a->input_pos, rl, copy);
		return copy;
	}
	t = fy_token_get_text(tok, &tl);
	if (!t)
		tl = 0;
	copy = arena_alloc(&p->ar, tl + 1);
	if (!copy)
		return NULL;
	if (tl)
		memcpy(copy, t, tl);
	*out_len = tl;
	return copy;
}

/* Parse `text` into a tree. Returns 0 with *root (NULL for an empty
 * stream), or -1 when the YAML itself is unusable (already reported). */
static int tree_build(struct pctx *p, const char *text, size_t len,
		      struct ynode **root)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *diag;
	struct fy_parser *fyp;
	struct fy_event *ev;
	struct frame stack[CONF_DEPTH_MAX];
	int depth = 0, docs = 0, rc = 0;
	int last_line = 1, last_col = 1;

	*root = NULL;
	if (!text_scan(p, text, len))
		return -1;
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = diag_sink;
	dcfg.colorize = false;
	diag = fy_diag_create(&dcfg);
	if (!diag) {
		diag_add(&p->dx, 1, 1, "out of memory");
		return -1;
	}
	fy_diag_set_collect_errors(diag, true);

	memset(&pcfg, 0, sizeof pcfg);
	/* Duplicate keys are detected in map_fields() so that they are
	 * reported along with every other problem instead of stopping the
	 * parse at the first. */
	pcfg.flags = FYPCF_QUIET | FYPCF_ALLOW_DUPLICATE_KEYS |
		     FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
	pcfg.diag = diag;
	fyp = fy_parser_create(&pcfg);
	if (!fyp || fy_parser_set_string(fyp, len ? text : "", len) != 0) {
		if (fyp)
			fy_parser_destroy(fyp);
		fy_diag_destroy(diag);
		diag_add(&p->dx, 1, 1, "out of memory");
		return -1;
	}

	while (rc == 0 && (ev = fy_parser_parse(fyp)) != NULL) {
		const struct fy_mark *m = fy_event_start_mark(ev);
		const struct fy_mark *em = fy_event_end_mark(ev);
		struct ynode *n = NULL;
		struct fy_token *tag = NULL;
		int line = m && m->line >= 0 ? m->line + 1 : last_line;
		int col = m && m->line >= 0 ? m->column + 1 : last_col;

		switch (ev->type) {
		case FYET_DOCUMENT_START:
			if (++docs > 1) {
				diag_add(&p->dx, line, col,
					 "only one YAML document is allowed");
				rc = -1;
			}
			break;
		case FYET_SCALAR:
		case FYET_ALIAS:
		case FYET_MAPPING_START:
		case FYET_SEQUENCE_START:
			n = arena_alloc(&p->ar, sizeof *n);
			if (!n) {
				diag_add(&p->dx, line, col, "out of memory");
				rc = -1;
				break;
			}
			n->line = line;
			n->col = col;
			if (ev->type == FYET_SCALAR) {
				size_t tl = 0;
				enum fy_node_style st = fy_event_get_node_style(ev);
				char *copy = scalar_text(p, ev->scalar.value, st,
							 text, len, &tl);

				if (!copy) {
					diag_add(&p->dx, line, col, "out of memory");
					rc = -1;
					break;
				}
				n->text = copy;
				n->len = tl;
				n->plain = st == FYNS_PLAIN || st == FYNS_ANY;
				/* libfyaml marks a quoted scalar's content;
				 * an operator looks for the opening quote. */
				if ((st == FYNS_SINGLE_QUOTED ||
				     st == FYNS_DOUBLE_QUOTED) && m &&
				    m->input_pos > 0 && m->input_pos <= len &&
				    n->col > 1 &&
				    text[m->input_pos - 1] ==
					    (st == FYNS_SINGLE_QUOTED ? '\'' : '"'))
					n->col--;
				n->type = n->plain && is_null_text(copy, tl)
						  ? Y_NULL : Y_SCALAR;
				tag = ev->scalar.tag;
				/* An empty value has no position of its own:
				 * point at its key instead. */
				if (!(m && m->line >= 0) && depth > 0 &&
				    stack[depth - 1].key) {
					n->line = stack[depth - 1].key->line;
					n->col = stack[depth - 1].key->col;
				}
			} else if (ev->type == FYET_ALIAS) {
				n->type = Y_ALIAS;
				n->text = "";
				diag_add(&p->dx, line, col,
					 "YAML aliases are not supported; write the value out");
			} else if (ev->type == FYET_MAPPING_START) {
				n->type = Y_MAP;
				n->text = "";
				tag = ev->mapping_start.tag;
			} else {
				n->type = Y_SEQ;
				n->text = "";
				tag = ev->sequence_start.tag;
			}
			if (tag) {
				const struct fy_mark *tm = fy_token_start_mark(tag);
				bool tm_ok = tm && tm->line >= 0;

				diag_add(&p->dx, tm_ok ? tm->line + 1 : n->line,
					 tm_ok ? tm->column + 1 : n->col,
					 "YAML tags are not supported");
			}
			if (depth == 0)
				*root = n;
			else
				tree_attach(&stack[depth - 1], n);
			if (n->type == Y_MAP || n->type == Y_SEQ) {
				if (depth == CONF_DEPTH_MAX) {
					diag_add(&p->dx, line, col,
						 "nested more than %d levels deep",
						 CONF_DEPTH_MAX);
					rc = -1;
					break;
				}
				stack[depth].n = n;
				stack[depth].key = NULL;
				depth++;
			}
			break;
		case FYET_MAPPING_END:
		case FYET_SEQUENCE_END:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		if (em && em->line >= 0) {
			last_line = em->line + 1;
			last_col = em->column + 1;
		}
		fy_parser_event_free(fyp, ev);
	}
	if (rc == 0 && fy_parser_get_stream_error(fyp)) {
		tree_syntax_errors(p, diag, true);
		rc = -1;
	}
	fy_parser_destroy(fyp);
	fy_diag_destroy(diag);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Showing values in messages. */

/* Length of the valid UTF-8 sequence at s (1..4), or 0. Overlong forms,
 * surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c;
	size_t n;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Text fit to be a value: valid UTF-8 without control characters. */
static bool text_clean(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_seq(u + i, len - i, &cp);

		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ||
		    cp == 0x2028 || cp == 0x2029 || cp == 0xfeff)
			return false;
		i += n;
	}
	return true;
}

/* Copy of at most CONF_SHOW_MAX bytes of s, unprintable bytes as '?',
 * cut on a character boundary. */
static const char *show(const char *s, size_t len, char *buf, size_t cap)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0;

	while (i < len && o + 4 < cap && i < CONF_SHOW_MAX) {
		uint32_t cp;
		size_t n = utf8_seq(u + i, len - i, &cp);

		if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
			buf[o++] = '?';
			i += n ? n : 1;
			continue;
		}
		if (o + n + 4 >= cap)
			break;
		memcpy(buf + o, s + i, n);
		o += n;
		i += n;
	}
	if (i < len && o + 4 <= cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* "what was found", for "expected X, got Y". */
static const char *describe(const struct ynode *n, char *buf, size_t cap)
{
	char tmp[CONF_SHOW_MAX * 2 + 8];

	switch (n->type) {
	case Y_NULL:
		snprintf(buf, cap, "%s", n->len ? "null" : "nothing");
		break;
	case Y_MAP:
		snprintf(buf, cap, "a mapping");
		break;
	case Y_SEQ:
		snprintf(buf, cap, "a list");
		break;
	case Y_ALIAS:
		snprintf(buf, cap, "an alias");
		break;
	case Y_SCALAR:
		snprintf(buf, cap, "%s'%s'", n->plain ? "" : "the quoted string ",
			 show(n->text, n->len, tmp, sizeof tmp));
		break;
	}
	return buf;
}

#define DESCRIBE(n) describe((n), (char[CONF_SHOW_MAX * 2 + 32]){0}, \
			     CONF_SHOW_MAX * 2 + 32)
#define SHOW(n) show((n)->text, (n)->len, (char[CONF_SHOW_MAX * 2 + 8]){0}, \
		     CONF_SHOW_MAX * 2 + 8)

/* ------------------------------------------------------------------ */
/* Typed values. Each getter reports its own problem and returns false;
 * an alias was reported when it was read and is not reported again. */

/* Canonical decimal only: no sign, no leading zero, no YAML 1.1 forms. */
static bool parse_dec(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool get_uint(struct pctx *p, const struct ynode *n, const char *path,
		     uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint32_t v;

	if (n->type == Y_ALIAS)
		return false;
	if (n->type == Y_SCALAR && n->plain && parse_dec(n->text, n->len, &v) &&
	    v >= lo && v <= hi) {
		*out = v;
		return true;
	}
	perr(p, n, "%s: expected an integer %u..%u, got %s", path, lo, hi,
	     DESCRIBE(n));
	return false;
}

static bool get_bool(struct pctx *p, const struct ynode *n, const char *path,
		     bool *out)
{
	static const char *const t[] = {"true", "True", "TRUE"};
	static const char *const f[] = {"false", "False", "FALSE"};

	if (n->type == Y_ALIAS)
		return false;
	if (n->type == Y_SCALAR && n->plain) {
		for (int i = 0; i < 3; i++) {
			if (!strcmp(n->text, t[i]) && n->len == strlen(t[i])) {
				*out = true;
				return true;
			}
			if (!strcmp(n->text, f[i]) && n->len == strlen(f[i])) {
				*out = false;
				return true;
			}
		}
	}
	perr(p, n, "%s: expected true or false, got %s", path, DESCRIBE(n));
	return false;
}

enum skind {
	S_NAME,    /* [A-Za-z0-9._-], 1..63 characters */
	S_IFNAME,  /* Linux interface name, 1..15 bytes */
	S_PATH,    /* file name */
	S_ABSPATH, /* absolute file name */
};

static bool name_ok(const char *s, size_t len)
{
	if (len < 1 || len > CONF_NAME_CHARS_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return false;
	}
	return true;
}

/* The kernel's dev_valid_name(), narrowed to printable ASCII. */
static bool ifname_ok(const char *s, size_t len)
{
	if (len < 1 || len >= TND_IFNAME_MAX)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == ':')
			return false;
	}
	return true;
}

/* A string setting. `nullable` settings take null as "none" (""). */
static bool get_str(struct pctx *p, const struct ynode *n, const char *path,
		    enum skind k, bool nullable, char *dst, size_t cap)
{
	if (n->type == Y_ALIAS)
		return false;
	if (n->type == Y_NULL && nullable) {
		memset(dst, 0, cap);
		return true;
	}
	switch (k) {
	case S_NAME:
		if (n->type == Y_SCALAR && name_ok(n->text, n->len))
			break;
		perr(p, n, "%s: expected a name of 1..%d characters from A-Z a-z 0-9 . _ -, got %s",
		     path, CONF_NAME_CHARS_MAX, DESCRIBE(n));
		return false;
	case S_IFNAME:
		if (n->type == Y_SCALAR && ifname_ok(n->text, n->len))
			break;
		perr(p, n, "%s: expected an interface name of 1..%d characters without spaces, '/' or ':', got %s",
		     path, TND_IFNAME_MAX - 1, DESCRIBE(n));
		return false;
	case S_PATH:
	case S_ABSPATH:
		if (n->type != Y_SCALAR || n->len == 0) {
			perr(p, n, "%s: expected %s file name%s, got %s", path,
			     k == S_ABSPATH ? "an absolute" : "a",
			     nullable ? " or null" : "", DESCRIBE(n));
			return false;
		}
		if (!text_clean(n->text, n->len)) {
			perr(p, n, "%s: file name contains a control character or invalid UTF-8",
			     path);
			return false;
		}
		if (n->len >= TND_PATH_MAX) {
			perr(p, n, "%s: file name is longer than %d bytes", path,
			     TND_PATH_MAX - 1);
			return false;
		}
		if (k == S_ABSPATH && n->text[0] != '/') {
			perr(p, n, "%s: expected an absolute file name (starting with /), got %s",
			     path, DESCRIBE(n));
			return false;
		}
		break;
	}
	if (n->len >= cap) { /* cannot happen for the kinds above */
		perr(p, n, "%s: value is too long", path);
		return false;
	}
	memset(dst, 0, cap);
	memcpy(dst, n->text, n->len);
	return true;
}

static bool addr_from_text(const char *s, size_t len, struct tnd_addr *a)
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (len == 0 || len >= sizeof buf || memchr(s, '\0', len))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(a, 0, sizeof *a);
	if (inet_pton(AF_INET, buf, a->bytes) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, a->bytes) == 1) {
		a->family = AF_INET6;
		return true;
	}
	memset(a, 0, sizeof *a);
	return false;
}

/* Why `a` cannot be a link or VIP address, or NULL when it can. */
static const char *addr_unusable(const struct tnd_addr *a, bool link)
{
	static const uint8_t zero[16];
	const uint8_t *b = a->bytes;

	if (a->family == AF_INET) {
		if (!memcmp(b, zero, 4))
			return "is the unspecified address";
		if (b[0] >= 224 && b[0] <= 239)
			return "is a multicast address";
		if (!memcmp(b, "\xff\xff\xff\xff", 4))
			return "is the broadcast address";
		return NULL;
	}
	if (!memcmp(b, zero, 16))
		return "is the unspecified address";
	if (b[0] == 0xff)
		return "is a multicast address";
	if (link && b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "is link-local; links need an address without a zone";
	return NULL;
}

static bool get_addr(struct pctx *p, const struct ynode *n, const char *path,
		     struct tnd_addr *out)
{
	struct tnd_addr a;
	const char *why;

	if (n->type == Y_ALIAS)
		return false;
	if (n->type != Y_SCALAR || !addr_from_text(n->text, n->len, &a)) {
		perr(p, n, "%s: expected an IPv4 or IPv6 address, got %s", path,
		     DESCRIBE(n));
		return false;
	}
	why = addr_unusable(&a, true);
	if (why) {
		perr(p, n, "%s: %s %s", path, SHOW(n), why);
		return false;
	}
	*out = a;
	return true;
}

/* "address/prefix"; a bare address means a host route (/32 or /128). */
static bool get_vip_addr(struct pctx *p, const struct ynode *n,
			 const char *path, struct tnd_vip *v)
{
	const char *slash;
	size_t alen;
	uint32_t plen, pmax;
	struct tnd_addr a;
	const char *why;

	if (n->type == Y_ALIAS)
		return false;
	if (n->type != Y_SCALAR)
		goto bad;
	slash = memchr(n->text, '/', n->len);
	alen = slash ? (size_t)(slash - n->text) : n->len;
	if (!addr_from_text(n->text, alen, &a))
		goto bad;
	pmax = a.family == AF_INET ? 32 : 128;
	plen = pmax;
	if (slash && !parse_dec(slash + 1, n->len - alen - 1, &plen))
		goto bad;
	if (plen < 1 || plen > pmax) {
		perr(p, n, "%s: prefix length %u is out of range 1..%u for %s",
		     path, plen, pmax, a.family == AF_INET ? "IPv4" : "IPv6");
		return false;
	}
	why = addr_unusable(&a, false);
	if (why) {
		perr(p, n, "%s: %s %s", path, SHOW(n), why);
		return false;
	}
	v->addr = a;
	v->prefix_len = (uint8_t)plen;
	return true;
bad:
	perr(p, n, "%s: expected address/prefix such as 192.0.2.1/24 or 2001:db8::1/64, got %s",
	     path, DESCRIBE(n));
	return false;
}

/* "host:port" where host is an IPv4 address, [IPv6] or a DNS name. */
static bool hostport_ok(const char *s, size_t len)
{
	const char *colon = NULL;
	uint32_t port;
	struct tnd_addr a;

	if (len == 0 || len >= TND_NAME_MAX || memchr(s, '\0', len))
		return false;
	for (size_t i = len; i-- > 0;)
		if (s[i] == ':') {
			colon = s + i;
			break;
		}
	if (!colon || !parse_dec(colon + 1, len - (size_t)(colon - s) - 1, &port) ||
	    port < 1 || port > 65535)
		return false;
	size_t hl = (size_t)(colon - s);

	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
		return addr_from_text(s + 1, hl - 2, &a) && a.family == AF_INET6;
	if (hl == 0)
		return false;
	if (addr_from_text(s, hl, &a))
		return a.family == AF_INET;
	/* RFC 1123 host name: labels of letters, digits and hyphens. */
	size_t lab = 0;

	for (size_t i = 0; i < hl; i++) {
		char ch = s[i];

		if (ch == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
		if (ch == '-' && lab == 0)
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0 && s[hl - 1] != '-';
}

/* ------------------------------------------------------------------ */
/* Mappings. */

struct field {
	const char *key;
	bool required;
};

static bool key_is(const struct ynode *k, const char *s)
{
	size_t l = strlen(s);

	return k->type == Y_SCALAR && k->len == l && !memcmp(k->text, s, l);
}

static bool same_text(const struct ynode *a, const struct ynode *b)
{
	return a->type == b->type && a->len == b->len &&
	       !memcmp(a->text, b->text, a->len);
}

/* Report a key appearing twice in mapping m; true if k is a repeat. */
static bool key_repeated(struct pctx *p, const struct ynode *m,
			 const struct ynode *k, const char *where)
{
	for (const struct ynode *e = m->first; e && e != k; e = e->next) {
		if ((e->type == Y_SCALAR || e->type == Y_NULL) && same_text(e, k)) {
			perr(p, k, "duplicate key '%s' %s (first at line %d)",
			     SHOW(k), where, e->line);
			return true;
		}
	}
	return false;
}

/* True (and reported once) when k is past the CONF_MAP_KEYS_MAX-th key. */
static bool too_many_keys(struct pctx *p, const struct ynode *k, int nth,
			  const char *where)
{
	if (nth <= CONF_MAP_KEYS_MAX)
		return false;
	perr(p, k, "more than %d keys %s; the rest are not read",
	     CONF_MAP_KEYS_MAX, where);
	return true;
}

/* Check the keys of mapping m against `fields` and hand back the value of
 * each (NULL when absent). `path` NULL is the top level. */
static void map_fields(struct pctx *p, const struct ynode *m, const char *path,
		       const struct field *fields, int nf, struct ynode **vals)
{
	char where[CONF_PATH_LEN];

	if (path)
		sub_path(where, "in %s", path);
	else
		sub_path(where, "at the top level");
	for (int i = 0; i < nf; i++)
		vals[i] = NULL;
	int nk = 0;

	for (struct ynode *k = m->first; k; k = k->next) {
		int i;

		if (too_many_keys(p, k, ++nk, where))
			break;

		if (k->type == Y_ALIAS)
			continue;
		if (k->type != Y_SCALAR && k->type != Y_NULL) {
			perr(p, k, "keys must be plain names %s, got %s", where,
			     DESCRIBE(k));
			continue;
		}
		if (key_repeated(p, m, k, where))
			continue;
		for (i = 0; i < nf; i++)
			if (key_is(k, fields[i].key))
				break;
		if (i == nf) {
			perr(p, k, "unknown key '%s' %s", SHOW(k), where);
			continue;
		}
		/* The parser gives every key a value (a null one for "key:"),
		 * so a missing value can only come from a broken tree. */
		if (!k->val) {
			perr(p, k, "key '%s' %s has no value", SHOW(k), where);
			continue;
		}
		vals[i] = k->val;
	}
	for (int i = 0; i < nf; i++)
		if (fields[i].required && !vals[i])
			perr(p, m, "missing required key '%s' %s", fields[i].key,
			     where);
}

/* The mapping a section holds, or NULL. Optional sections may be empty
 * ("sessions:" with nothing under it means all defaults). */
static struct ynode *section(struct pctx *p, struct ynode *n, const char *path,
			     bool required, const char *what)
{
	if (!n || n->type == Y_ALIAS)
		return NULL;
	if (n->type == Y_MAP)
		return n;
	if (n->type == Y_NULL && !required)
		return NULL;
	perr(p, n, "%s: expected %s, got %s", path, what, DESCRIBE(n));
	return NULL;
}

/* A list, or NULL. Empty (null) optional lists count as empty. */
static struct ynode *list(struct pctx *p, struct ynode *n, const char *path,
			  const char *what)
{
	if (!n || n->type == Y_ALIAS || n->type == Y_NULL)
		return NULL;
	if (n->type == Y_SEQ)
		return n;
	perr(p, n, "%s: expected %s, got %s", path, what, DESCRIBE(n));
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Sections. */

static void do_cluster(struct pctx *p, struct ynode *n)
{
	static const struct field f[] = {
		{"name", true}, {"id", true}, {"key_file", true},
		{"port", false}, {"heartbeat_ms", false}, {"dead_after", false},
	};
	struct ynode *v[6];
	struct tnd_conf *c = p->c;
	struct ynode *m = section(p, n, "cluster", true,
				  "a mapping with name, id and key_file");
	uint32_t u;

	if (!m)
		return;
	map_fields(p, m, "cluster", f, 6, v);
	if (v[0])
		get_str(p, v[0], "cluster.name", S_NAME, false, c->cluster_name,
			sizeof c->cluster_name);
	if (v[1] && get_uint(p, v[1], "cluster.id", 1, 255, &u))
		c->cluster_id = (uint8_t)u;
	if (v[2])
		get_str(p, v[2], "cluster.key_file", S_PATH, false, c->key_file,
			sizeof c->key_file);
	if (v[3] && get_uint(p, v[3], "cluster.port", 1, 65535, &u))
		c->port = (uint16_t)u;
	if (v[4])
		get_uint(p, v[4], "cluster.heartbeat_ms", 10, 10000, &c->heartbeat_ms);
	if (v[5])
		get_uint(p, v[5], "cluster.dead_after", 2, 100, &c->dead_after);
}

static void do_node(struct pctx *p, int i, struct ynode *ent)
{
	static const struct field f[] = {{"name", true}, {"links", true}};
	struct tnd_node_conf *nc = &p->c->nodes[i];
	char path[CONF_PATH_LEN], sub[CONF_PATH_LEN];
	struct ynode *v[2], *links;

	sub_path(path, "nodes[%d]", i);
	if (ent->type != Y_MAP) {
		if (ent->type != Y_ALIAS)
			perr(p, ent, "%s: expected a mapping with name and links, got %s",
			     path, DESCRIBE(ent));
		return;
	}
	map_fields(p, ent, path, f, 2, v);
	if (v[0]) {
		p->node_name_n[i] = v[0];
		sub_path(sub, "%s.name", path);
		p->node_name_ok[i] = get_str(p, v[0], sub, S_NAME, false, nc->name,
					     sizeof nc->name);
	}
	if (!v[1])
		return;
	sub_path(sub, "%s.links", path);
	links = list(p, v[1], sub, "a list of 1..4 addresses, one per link");
	if (!links) {
		if (v[1]->type == Y_NULL)
			perr(p, v[1], "%s: expected a list of 1..4 addresses, one per link, got %s",
			     sub, DESCRIBE(v[1]));
		return;
	}
	p->links_n[i] = links;
	if (links->n < 1 || links->n > TND_LINKS_MAX)
		perr(p, links, "%s: a node has 1..%d links, got %d", sub,
		     TND_LINKS_MAX, links->n);
	else
		p->links_count_ok[i] = true;
	int j = 0;

	for (struct ynode *a = links->first; a && j < TND_LINKS_MAX; a = a->next, j++) {
		sub_path(sub, "%s.links[%d]", path, j);
		p->link_n[i][j] = a;
		p->link_ok[i][j] = get_addr(p, a, sub, &nc->links[j]);
	}
	nc->n_links = j;
}

static void do_nodes(struct pctx *p, struct ynode *n)
{
	struct tnd_conf *c = p->c;
	struct ynode *l;
	char a1[INET6_ADDRSTRLEN], a2[INET6_ADDRSTRLEN];
	int i = 0;

	if (!n)
		return;
	l = list(p, n, "nodes", "a list of 2..32 nodes");
	if (!l) {
		if (n->type == Y_NULL)
			perr(p, n, "nodes: expected a list of 2..%d nodes, got %s",
			     TND_NODES_MAX, DESCRIBE(n));
		return;
	}
	if (l->n < 2 || l->n > TND_NODES_MAX)
		perr(p, l, "nodes: a cluster has 2..%d nodes, got %d",
		     TND_NODES_MAX, l->n);
	for (struct ynode *e = l->first; e && i < TND_NODES_MAX; e = e->next, i++)
		do_node(p, i, e);
	c->n_nodes = p->n_node_ent = i;

	/* Names are unique. */
	for (int b = 1; b < i; b++) {
		for (int a = 0; a < b; a++) {
			if (p->node_name_ok[a] && p->node_name_ok[b] &&
			    !strcmp(c->nodes[a].name, c->nodes[b].name)) {
				perr(p, p->node_name_n[b],
				     "nodes[%d].name: duplicate node name '%s' (also nodes[%d])",
				     b, c->nodes[b].name, a);
				break;
			}
		}
	}
	/* Every node has one address per link: same count, and link L of
	 * every node is in one family (a link is one network). */
	int ref = -1;

	for (int b = 0; b < i; b++) {
		if (!p->links_count_ok[b])
			continue;
		if (ref < 0) {
			ref = b;
			continue;
		}
		if (c->nodes[b].n_links != c->nodes[ref].n_links)
			perr(p, p->links_n[b],
			     "nodes[%d].links: %d link%s but nodes[%d] has %d; every node needs one address per link",
			     b, c->nodes[b].n_links, c->nodes[b].n_links == 1 ? "" : "s",
			     ref, c->nodes[ref].n_links);
	}
	for (int L = 0; L < TND_LINKS_MAX; L++) {
		int r = -1;

		for (int b = 0; b < i; b++) {
			if (!p->link_ok[b][L])
				continue;
			if (r < 0) {
				r = b;
				continue;
			}
			if (c->nodes[b].links[L].family != c->nodes[r].links[L].family)
				perr(p, p->link_n[b][L],
				     "nodes[%d].links[%d]: %s is %s but link %d of nodes[%d] is %s; a link's addresses are in one family",
				     b, L,
				     conf_addr_str(&c->nodes[b].links[L], a1, sizeof a1),
				     c->nodes[b].links[L].family == AF_INET ? "IPv4" : "IPv6",
				     L, r,
				     c->nodes[r].links[L].family == AF_INET ? "IPv4" : "IPv6");
		}
	}
	/* Addresses are unique across the cluster. */
	for (int b = 0; b < i; b++) {
		for (int lb = 0; lb < TND_LINKS_MAX; lb++) {
			bool dup = false;

			if (!p->link_ok[b][lb])
				continue;
			for (int a = 0; a <= b && !dup; a++) {
				for (int la = 0; la < TND_LINKS_MAX; la++) {
					if (a == b && la >= lb)
						break;
					if (!p->link_ok[a][la] ||
					    memcmp(&c->nodes[a].links[la],
						   &c->nodes[b].links[lb],
						   sizeof(struct tnd_addr)))
						continue;
					perr(p, p->link_n[b][lb],
					     "nodes[%d].links[%d]: address %s is already used by nodes[%d].links[%d]",
					     b, lb,
					     conf_addr_str(&c->nodes[b].links[lb], a2, sizeof a2),
					     a, la);
					dup = true;
					break;
				}
			}
		}
	}
}

/* Node index for a priority key, matching the name as written. */
static int node_by_key(struct pctx *p, const struct ynode *k)
{
	for (int i = 0; i < p->n_node_ent; i++)
		if (p->node_name_n[i] && same_text(p->node_name_n[i], k))
			return i;
	return -1;
}

static void do_priority(struct pctx *p, struct gtmp *t, const char *path,
			struct ynode *n)
{
	char sub[CONF_PATH_LEN];
	struct ynode *m;

	sub_path(sub, "%s.priority", path);
	t->prio_n = n;
	m = section(p, n, sub, false,
		    "a mapping of node name to priority 0..255, such as {fw-a: 200, fw-b: 100}");
	t->prio_ok = m || (n->type == Y_NULL);
	if (!m)
		return;
	int nk = 0;

	for (struct ynode *k = m->first; k; k = k->next) {
		char vpath[CONF_PATH_LEN], where[CONF_PATH_LEN];
		uint32_t u;
		int idx;

		sub_path(where, "in %s", sub);
		if (too_many_keys(p, k, ++nk, where)) {
			t->prio_ok = false;
			break;
		}

		if (k->type == Y_ALIAS) {
			t->prio_ok = false;
			continue;
		}
		if (k->type != Y_SCALAR) {
			perr(p, k, "%s: keys must be node names, got %s", sub,
			     DESCRIBE(k));
			t->prio_ok = false;
			continue;
		}
		if (key_repeated(p, m, k, where)) {
			t->prio_ok = false;
			continue;
		}
		idx = node_by_key(p, k);
		if (idx < 0) {
			perr(p, k, "%s: unknown node '%s'", sub, SHOW(k));
			t->prio_ok = false;
			continue;
		}
		sub_path(vpath, "%s.%s", sub, SHOW(k));
		if (!k->val) {
			perr(p, k, "%s: expected an integer 0..255, got nothing", vpath);
			t->prio_ok = false;
		} else if (get_uint(p, k->val, vpath, 0, 255, &u)) {
			t->g.priority[idx] = (uint8_t)u;
		} else {
			t->prio_ok = false;
		}
	}
}

static void do_vips(struct pctx *p, struct gtmp *t, const char *path,
		    struct ynode *n)
{
	static const struct field f[] = {{"address", true}, {"interface", true}};
	char sub[CONF_PATH_LEN];
	struct ynode *l;
	int j = 0;

	sub_path(sub, "%s.vips", path);
	l = list(p, n, sub, "a list of {address: A/P, interface: IF}");
	t->vips_n = n;
	if (!l)
		return;
	if (l->n > TND_VIPS_MAX)
		perr(p, l, "%s: at most %d vips per group, got %d", sub,
		     TND_VIPS_MAX, l->n);
	for (struct ynode *e = l->first; e && j < TND_VIPS_MAX; e = e->next, j++) {
		struct tnd_vip *v = &t->g.vips[j];
		char vp[CONF_PATH_LEN], fp[CONF_PATH_LEN];
		struct ynode *fv[2];
		bool ok = true;

		sub_path(vp, "%s[%d]", sub, j);
		if (e->type != Y_MAP) {
			if (e->type != Y_ALIAS)
				perr(p, e, "%s: expected a mapping {address: A/P, interface: IF}, got %s",
				     vp, DESCRIBE(e));
			continue;
		}
		map_fields(p, e, vp, f, 2, fv);
		sub_path(fp, "%s.address", vp);
		ok = fv[0] && get_vip_addr(p, fv[0], fp, v);
		t->vip_n[j] = fv[0];
		t->vip_ok[j] = ok;
		sub_path(fp, "%s.interface", vp);
		if (fv[1])
			get_str(p, fv[1], fp, S_IFNAME, false, v->ifname,
				sizeof v->ifname);
	}
	t->g.n_vips = j;
}

static void do_monitors(struct pctx *p, struct gtmp *t, const char *path,
			struct ynode *n)
{
	char sub[CONF_PATH_LEN];
	struct ynode *l;
	int j = 0;

	sub_path(sub, "%s.monitor_interfaces", path);
	l = list(p, n, sub, "a list of interface names");
	if (!l)
		return;
	if (l->n > TND_MONITORS_MAX)
		perr(p, l, "%s: at most %d interfaces per group, got %d", sub,
		     TND_MONITORS_MAX, l->n);
	for (struct ynode *e = l->first; e && j < TND_MONITORS_MAX; e = e->next, j++) {
		char ip[CONF_PATH_LEN];

		sub_path(ip, "%s[%d]", sub, j);
		if (!get_str(p, e, ip, S_IFNAME, false, t->g.monitors[j],
			     sizeof t->g.monitors[j]))
			continue;
		for (int a = 0; a < j; a++) {
			if (!strcmp(t->g.monitors[a], t->g.monitors[j])) {
				perr(p, e, "%s: '%s' is already listed as %s[%d]", ip,
				     t->g.monitors[j], sub, a);
				break;
			}
		}
	}
	t->g.n_monitors = j;
}

static void do_hooks(struct pctx *p, struct gtmp *t, const char *path,
		     struct ynode *n)
{
	static const struct field f[] = {{"primary", false}, {"secondary", false}};
	char sub[CONF_PATH_LEN], fp[CONF_PATH_LEN];
	struct ynode *v[2], *m;

	sub_path(sub, "%s.hooks", path);
	m = section(p, n, sub, false,
		    "a mapping {primary: PATH, secondary: PATH}");
	if (!m)
		return;
	map_fields(p, m, sub, f, 2, v);
	sub_path(fp, "%s.primary", sub);
	if (v[0])
		get_str(p, v[0], fp, S_ABSPATH, true, t->g.hook_primary,
			sizeof t->g.hook_primary);
	sub_path(fp, "%s.secondary", sub);
	if (v[1])
		get_str(p, v[1], fp, S_ABSPATH, true, t->g.hook_secondary,
			sizeof t->g.hook_secondary);
}

static void do_group(struct pctx *p, int i, struct ynode *ent)
{
	static const struct field f[] = {
		{"id", true}, {"priority", false}, {"preempt", false},
		{"preempt_delay_s", false}, {"vips", false},
		{"monitor_interfaces", false}, {"hooks", false},
	};
	struct gtmp *t = &p->grp[i];
	char path[CONF_PATH_LEN], sub[CONF_PATH_LEN];
	struct ynode *v[7];
	uint32_t u;

	t->ent = ent;
	t->prio_ok = true;
	sub_path(path, "groups[%d]", i);
	if (ent->type != Y_MAP) {
		if (ent->type != Y_ALIAS)
			perr(p, ent, "%s: expected a mapping with id and priority, got %s",
			     path, DESCRIBE(ent));
		return;
	}
	map_fields(p, ent, path, f, 7, v);
	if (v[0]) {
		sub_path(sub, "%s.id", path);
		t->id_n = v[0];
		t->id_ok = get_uint(p, v[0], sub, 0, 255, &u);
		if (t->id_ok)
			t->g.id = (uint8_t)u;
	}
	if (v[1])
		do_priority(p, t, path, v[1]);
	if (v[2]) {
		sub_path(sub, "%s.preempt", path);
		get_bool(p, v[2], sub, &t->g.preempt);
	}
	if (v[3]) {
		sub_path(sub, "%s.preempt_delay_s", path);
		get_uint(p, v[3], sub, 0, DAY_S, &t->g.preempt_delay_s);
	}
	if (v[4])
		do_vips(p, t, path, v[4]);
	if (v[5])
		do_monitors(p, t, path, v[5]);
	if (v[6])
		do_hooks(p, t, path, v[6]);
}

static int group_cmp(const void *a, const void *b)
{
	const struct tnd_group_conf *x = a, *y = b;

	return (int)x->id - (int)y->id;
}

static void do_groups(struct pctx *p, struct ynode *n)
{
	struct tnd_conf *c = p->c;
	char a1[INET6_ADDRSTRLEN];
	struct ynode *l = n ? list(p, n, "groups", "a list of groups") : NULL;
	int ng = 0, nkeep = 0;
	bool have0 = false;

	if (l) {
		if (l->n > TND_GROUPS_MAX)
			perr(p, l, "groups: at most %d groups, got %d",
			     TND_GROUPS_MAX, l->n);
		for (struct ynode *e = l->first; e && ng < TND_GROUPS_MAX; e = e->next)
			do_group(p, ng++, e);
	}
	p->n_group_ent = ng;

	for (int b = 0; b < ng; b++) {
		struct gtmp *t = &p->grp[b];
		bool any = false;

		if (!t->id_ok)
			continue;
		t->keep = true;
		for (int a = 0; a < b; a++) {
			if (p->grp[a].id_ok && p->grp[a].g.id == t->g.id) {
				perr(p, t->id_n, "groups[%d].id: duplicate group id %u (also groups[%d])",
				     b, t->g.id, a);
				t->keep = false;
				break;
			}
		}
		if (t->g.id == 0)
			have0 = true;
		if (t->g.id == 0 && t->g.n_vips > 0)
			perr(p, t->vips_n,
			     "groups[%d].vips: group 0 is the control plane and carries no vips; put them in a group 1..255",
			     b);
		for (int k = 0; k < c->n_nodes; k++)
			any |= t->g.priority[k] > 0;
		if (t->prio_ok && !any && t->g.id == 0)
			perr(p, t->prio_n ? t->prio_n : t->ent,
			     "groups[%d]: group 0 needs at least one node with priority above 0 (it elects the configuration authority)",
			     b);
		else if (t->prio_ok && !any && t->g.n_vips > 0)
			perr(p, t->prio_n ? t->prio_n : t->ent,
			     "groups[%d]: a group with vips needs at least one node with priority above 0",
			     b);
	}

	/* A VIP is owned by one group, once, and is never a link address:
	 * two owners would fight over it, and a link address on the move
	 * would cut the heartbeats that decide who owns it. */
	for (int b = 0; b < ng; b++) {
		struct gtmp *t = &p->grp[b];

		for (int vb = 0; vb < t->g.n_vips; vb++) {
			const struct tnd_addr *va = &t->g.vips[vb].addr;
			bool reported = false;
			char vp[CONF_PATH_LEN];

			if (!t->vip_ok[vb])
				continue;
			sub_path(vp, "groups[%d].vips[%d].address", b, vb);
			for (int a = 0; a <= b && !reported; a++) {
				struct gtmp *s = &p->grp[a];

				for (int va2 = 0; va2 < s->g.n_vips; va2++) {
					if (a == b && va2 >= vb)
						break;
					if (!s->vip_ok[va2] ||
					    memcmp(&s->g.vips[va2].addr, va, sizeof *va))
						continue;
					perr(p, t->vip_n[vb], "%s: %s is already a vip of groups[%d] (vips[%d])",
					     vp, conf_addr_str(va, a1, sizeof a1), a, va2);
					reported = true;
					break;
				}
			}
			for (int k = 0; k < p->n_node_ent && !reported; k++) {
				for (int L = 0; L < TND_LINKS_MAX; L++) {
					if (!p->link_ok[k][L] ||
					    memcmp(&c->nodes[k].links[L], va, sizeof *va))
						continue;
					perr(p, t->vip_n[vb], "%s: %s is the address of nodes[%d].links[%d]; a vip must not be a link address",
					     vp, conf_addr_str(va, a1, sizeof a1), k, L);
					reported = true;
					break;
				}
			}
		}
	}

	/* Sorted by id, group 0 first (synthesized when the file has none). */
	for (int b = 0; b < ng; b++)
		if (p->grp[b].keep)
			nkeep++;
	if (nkeep + (have0 ? 0 : 1) > TND_GROUPS_MAX) {
		perr(p, l, "groups: at most %d groups including group 0, which is added when not listed",
		     TND_GROUPS_MAX);
		return;
	}
	c->n_groups = 0;
	if (!have0) {
		struct tnd_group_conf *g0 = &c->groups[c->n_groups++];

		memset(g0, 0, sizeof *g0);
		for (int k = 0; k < c->n_nodes; k++)
			g0->priority[k] = DEF_GROUP0_PRIORITY;
	}
	for (int b = 0; b < ng; b++)
		if (p->grp[b].keep)
			c->groups[c->n_groups++] = p->grp[b].g;
	qsort(c->groups, (size_t)c->n_groups, sizeof c->groups[0], group_cmp);
}

static void do_sessions(struct pctx *p, struct ynode *n)
{
	static const struct field f[] = {{"sync", false}};
	struct ynode *v[1];
	struct ynode *m = section(p, n, "sessions", false, "a mapping {sync: BOOL}");

	if (!m)
		return;
	map_fields(p, m, "sessions", f, 1, v);
	if (v[0])
		get_bool(p, v[0], "sessions.sync", &p->c->sessions_sync);
}

static void do_firewall(struct pctx *p, struct ynode *n)
{
	static const struct field f[] = {{"ruleset", false}};
	struct ynode *v[1];
	struct ynode *m = section(p, n, "firewall", false, "a mapping {ruleset: PATH}");

	if (!m)
		return;
	map_fields(p, m, "firewall", f, 1, v);
	if (v[0])
		get_str(p, v[0], "firewall.ruleset", S_PATH, true,
			p->c->firewall_ruleset, sizeof p->c->firewall_ruleset);
}

static void do_upgrade(struct pctx *p, struct ynode *n)
{
	static const struct field f[] = {
		{"trusted_keys", false}, {"hold_timer_s", false},
		{"sync_timeout_s", false}, {"cpu_max_percent", false},
		{"failback", false}, {"auto_finalize", false},
	};
	struct tnd_conf *c = p->c;
	struct ynode *v[6];
	struct ynode *m = section(p, n, "upgrade", false, "a mapping");

	if (!m)
		return;
	map_fields(p, m, "upgrade", f, 6, v);
	if (v[0])
		get_str(p, v[0], "upgrade.trusted_keys", S_PATH, false,
			c->upgrade_trusted_keys, sizeof c->upgrade_trusted_keys);
	if (v[1])
		get_uint(p, v[1], "upgrade.hold_timer_s", 1, DAY_S,
			 &c->upgrade_hold_timer_s);
	if (v[2])
		get_uint(p, v[2], "upgrade.sync_timeout_s", 1, DAY_S,
			 &c->upgrade_sync_timeout_s);
	if (v[3])
		get_uint(p, v[3], "upgrade.cpu_max_percent", 1, 100,
			 &c->upgrade_cpu_max_percent);
	if (v[4])
		get_bool(p, v[4], "upgrade.failback", &c->upgrade_failback);
	if (v[5])
		get_bool(p, v[5], "upgrade.auto_finalize", &c->upgrade_auto_finalize);
}

static void do_api(struct pctx *p, struct ynode *n)
{
	static const struct field f[] = {{"http", false},     {"token_file", false},
					 {"tls_cert", false}, {"tls_key", false},
					 {"images_dir", false}, {"probe_file", false}};
	struct tnd_conf *c = p->c;
	struct ynode *v[6];
	struct ynode *m = section(p, n, "api", false, "a mapping");

	if (!m)
		return;
	map_fields(p, m, "api", f, 6, v);
	if (v[0] && v[0]->type != Y_ALIAS) {
		if (v[0]->type == Y_NULL) {
			memset(c->api_http, 0, sizeof c->api_http);
		} else if (v[0]->type == Y_SCALAR &&
			   hostport_ok(v[0]->text, v[0]->len)) {
			memset(c->api_http, 0, sizeof c->api_http);
			memcpy(c->api_http, v[0]->text, v[0]->len);
		} else {
			perr(p, v[0], "api.http: expected host:port such as 127.0.0.1:8080 or [::1]:8080, got %s",
			     DESCRIBE(v[0]));
		}
	}
	if (v[1])
		get_str(p, v[1], "api.token_file", S_PATH, false, c->api_token_file,
			sizeof c->api_token_file);
	if (v[2])
		get_str(p, v[2], "api.tls_cert", S_ABSPATH, true, c->api_tls_cert, sizeof c->api_tls_cert);
	if (v[3])
		get_str(p, v[3], "api.tls_key", S_ABSPATH, true, c->api_tls_key, sizeof c->api_tls_key);
	if (v[4])
		get_str(p, v[4], "api.images_dir", S_ABSPATH, false, c->api_images_dir,
			sizeof c->api_images_dir);
	if (v[5])
		get_str(p, v[5], "api.probe_file", S_ABSPATH, true, c->api_probe_file,
			sizeof c->api_probe_file);
	/* A certificate without its key (or the reverse) is a mistake, not
	 * a request for plain HTTP. */
	if ((c->api_tls_cert[0] != 0) != (c->api_tls_key[0] != 0))
		perr(p, v[2] ? v[2] : v[3], "api.tls_cert and api.tls_key go together: set both for HTTPS, or neither");
}

static void validate(struct pctx *p, struct ynode *root)
{
	static const struct field f[] = {
		{"cluster", true}, {"nodes", true}, {"groups", false},
		{"sessions", false}, {"firewall", false}, {"upgrade", false},
		{"api", false},
	};
	struct ynode *v[7];

	if (!root || root->type == Y_NULL) {
		perr(p, root, "empty configuration: expected a mapping with cluster and nodes");
		return;
	}
	if (root->type != Y_MAP) {
		if (root->type != Y_ALIAS)
			perr(p, root, "expected a mapping with cluster and nodes at the top level, got %s",
			     DESCRIBE(root));
		return;
	}
	map_fields(p, root, NULL, f, 7, v);
	do_cluster(p, v[0]);
	do_nodes(p, v[1]);
	do_groups(p, v[2]);
	do_sessions(p, v[3]);
	do_firewall(p, v[4]);
	do_upgrade(p, v[5]);
	do_api(p, v[6]);
}

static void conf_defaults(struct tnd_conf *c, const char *name)
{
	memset(c, 0, sizeof *c);
	snprintf(c->source, sizeof c->source, "%s", name);
	c->port = DEF_PORT;
	c->heartbeat_ms = DEF_HEARTBEAT_MS;
	c->dead_after = DEF_DEAD_AFTER;
	c->sessions_sync = true;
	snprintf(c->upgrade_trusted_keys, sizeof c->upgrade_trusted_keys, "%s",
		 DEF_TRUSTED_KEYS);
	c->upgrade_hold_timer_s = DEF_HOLD_TIMER_S;
	c->upgrade_sync_timeout_s = DEF_SYNC_TIMEOUT_S;
	c->upgrade_cpu_max_percent = DEF_CPU_MAX_PERCENT;
	c->upgrade_failback = true;
	snprintf(c->api_token_file, sizeof c->api_token_file, "%s", DEF_TOKEN_FILE);
	snprintf(c->api_images_dir, sizeof c->api_images_dir, "%s", DEF_IMAGES_DIR);
}

/* Tab characters are refused before the YAML parser sees the text: YAML
 * allows them only as separation, never as indentation, and libfyaml
 * 0.7.12 (Debian 12) dereferences a null pointer while cleaning up after
 * some tab placements (found by tests/fuzz/fuzz_conf: "? c:<TAB>:"), which
 * would let one `tandemctl config apply` crash every node's parser. One
 * diagnostic per line with a tab. */
static bool tabs_refused(struct pctx *p, const char *text, size_t len)
{
	int line = 1, col = 1, last_line = 0;
	bool any = false;

	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\t' && line != last_line) {
			diag_add(&p->dx, line, col, "tab character: YAML indents and separates with spaces");
			last_line = line;
			any = true;
		}
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	return any;
}

int conf_parse(const char *name, const char *text, size_t len,
	       struct tnd_conf *out, struct conf_diags *diags)
{
	struct conf_diags scratch;
	struct pctx *p;
	struct ynode *root = NULL;

	if (!name)
		name = "<config>";
	if (!diags)
		diags = &scratch;
	memset(diags, 0, sizeof *diags);
	conf_defaults(out, name);
	if (!text)
		len = 0;

	p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(diags->msg[0], CONF_DIAG_LEN, "%s:0:0: out of memory", name);
		diags->n = 1;
		return TND_EINVAL;
	}
	p->dx.name = name;
	p->dx.d = diags;
	p->c = out;
	if (len > CONF_TEXT_MAX_BYTES)
		diag_add(&p->dx, 1, 1, "configuration is larger than %d bytes",
			 CONF_TEXT_MAX_BYTES);
	else if (tabs_refused(p, text, len))
		; /* located above; libfyaml never sees the text */
	else if (tree_build(p, text, len, &root) == 0)
		validate(p, root);
	diag_sort(&p->dx);
	arena_free(&p->ar);
	free(p);
	return diags->n > 0 || diags->n_dropped > 0 ? TND_EINVAL : TND_OK;
}

int conf_load(const char *path, struct tnd_conf *out, struct conf_diags *diags)
{
	struct conf_diags scratch;
	FILE *f;
	char *buf = NULL;
	size_t len = 0;
	int err = 0, rc;

	if (!diags)
		diags = &scratch;
	f = fopen(path, "rb");
	if (f) {
		/* One byte past the limit tells "too large" from "exactly". */
		buf = malloc(CONF_TEXT_MAX_BYTES + 1);
		if (!buf)
			err = ENOMEM;
		else
			len = fread(buf, 1, CONF_TEXT_MAX_BYTES + 1, f);
		if (!err && ferror(f))
			err = errno ? errno : EIO;
		fclose(f);
	} else {
		err = errno;
	}
	if (err) {
		conf_defaults(out, path);
		memset(diags, 0, sizeof *diags);
		snprintf(diags->msg[0], CONF_DIAG_LEN, "%s:0:0: cannot read: %s",
			 path, strerror(err));
		diags->n = 1;
		free(buf);
		return TND_EINVAL;
	}
	rc = conf_parse(path, buf, len, out, diags);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Printing. */

static bool word_in(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp(s, *words))
			return true;
	return false;
}

/* Would a YAML 1.1 or 1.2 reader take this plain text for a number? */
static bool numberish(const char *s)
{
	int dots = 0;

	if (*s == '+' || *s == '-')
		s++;
	if (s[0] == '0' && s[1] && strchr("xXoObB", s[1]))
		return true;
	if (!*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return false;
	for (; *s; s++) {
		if (*s == '.')
			dots++;
		else if (!strchr("0123456789_:eE+-", *s))
			return false;
	}
	return dots <= 1;
}

/* Plain when no YAML reader could mistake it, double-quoted otherwise,
 * with escapes for what YAML would not keep as is (controls, line and
 * paragraph separators, the BOM). */
static void emit_str(FILE *f, const char *s, bool flow)
{
	static const char *const special[] = {
		"null", "Null", "NULL", "~", "true", "True", "TRUE", "false",
		"False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO", "on",
		"On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N", NULL,
	};
	size_t len = strlen(s);
	bool plain = len > 0 && !word_in(s, special) && !numberish(s) &&
		     ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
		      (s[0] >= '0' && s[0] <= '9') || s[0] == '_' || s[0] == '/');

	for (size_t i = 0; plain && i < len; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '/' || ch == '-')
			continue;
		if (ch == ':' && !flow && i + 1 < len && s[i + 1] != ' ')
			continue;
		plain = false;
	}
	if (plain) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (size_t i = 0; i < len;) {
		const unsigned char *u = (const unsigned char *)s + i;
		uint32_t cp;
		size_t n = utf8_seq(u, len - i, &cp);

		if (n == 0) { /* not from conf_parse; keep the output valid */
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		i += n;
		if (cp == '"' || cp == '\\')
			fprintf(f, "\\%c", (int)cp);
		else if (cp < 0x20 || cp == 0x7f)
			fprintf(f, "\\x%02x", (unsigned)cp);
		else if (cp < 0x80 || (cp >= 0xa0 && cp != 0x2028 &&
					cp != 0x2029 && cp != 0xfeff))
			fwrite(u, 1, n, f);
		else if (cp <= 0xffff)
			fprintf(f, "\\u%04x", (unsigned)cp);
		else
			fprintf(f, "\\U%08x", (unsigned)cp);
	}
	fputc('"', f);
}

static void emit_opt(FILE *f, const char *s, bool flow)
{
	if (s[0])
		emit_str(f, s, flow);
	else
		fputs("null", f);
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int conf_print(const struct tnd_conf *c, FILE *f)
{
	char a[INET6_ADDRSTRLEN];
	int n_nodes = clampi(c->n_nodes, 0, TND_NODES_MAX);
	int n_groups = clampi(c->n_groups, 0, TND_GROUPS_MAX);

	fputs("cluster:\n  name: ", f);
	emit_str(f, c->cluster_name, false);
	fprintf(f, "\n  id: %u\n  key_file: ", c->cluster_id);
	emit_str(f, c->key_file, false);
	fprintf(f, "\n  port: %u\n  heartbeat_ms: %u\n  dead_after: %u\n",
		c->port, c->heartbeat_ms, c->dead_after);

	fputs("nodes:\n", f);
	for (int i = 0; i < n_nodes; i++) {
		const struct tnd_node_conf *nc = &c->nodes[i];
		int nl = clampi(nc->n_links, 0, TND_LINKS_MAX);

		fputs("  - name: ", f);
		emit_str(f, nc->name, false);
		fputs("\n    links: [", f);
		for (int l = 0; l < nl; l++) {
			fputs(l ? ", " : "", f);
			emit_str(f, conf_addr_str(&nc->links[l], a, sizeof a), true);
		}
		fputs("]\n", f);
	}

	fputs("groups:\n", f);
	for (int gi = 0; gi < n_groups; gi++) {
		const struct tnd_group_conf *g = &c->groups[gi];
		int nv = clampi(g->n_vips, 0, TND_VIPS_MAX);
		int nm = clampi(g->n_monitors, 0, TND_MONITORS_MAX);

		fprintf(f, "  - id: %u\n    priority: {", g->id);
		for (int i = 0; i < n_nodes; i++) {
			fputs(i ? ", " : "", f);
			emit_str(f, c->nodes[i].name, true);
			fprintf(f, ": %u", g->priority[i]);
		}
		fprintf(f, "}\n    preempt: %s\n    preempt_delay_s: %u\n",
			g->preempt ? "true" : "false", g->preempt_delay_s);
		fputs(nv ? "    vips:\n" : "    vips: []\n", f);
		for (int v = 0; v < nv; v++) {
			const struct tnd_vip *vp = &g->vips[v];

			char ap[INET6_ADDRSTRLEN + 8];

			snprintf(ap, sizeof ap, "%s/%u",
				 conf_addr_str(&vp->addr, a, sizeof a), vp->prefix_len);
			fputs("      - {address: ", f);
			emit_str(f, ap, true);
			fputs(", interface: ", f);
			emit_str(f, vp->ifname, true);
			fputs("}\n", f);
		}
		fputs("    monitor_interfaces: [", f);
		for (int m = 0; m < nm; m++) {
			fputs(m ? ", " : "", f);
			emit_str(f, g->monitors[m], true);
		}
		fputs("]\n    hooks: {primary: ", f);
		emit_opt(f, g->hook_primary, true);
		fputs(", secondary: ", f);
		emit_opt(f, g->hook_secondary, true);
		fputs("}\n", f);
	}

	fprintf(f, "sessions:\n  sync: %s\n", c->sessions_sync ? "true" : "false");
	fputs("firewall:\n  ruleset: ", f);
	emit_opt(f, c->firewall_ruleset, false);
	fputs("\nupgrade:\n  trusted_keys: ", f);
	emit_str(f, c->upgrade_trusted_keys, false);
	fprintf(f, "\n  hold_timer_s: %u\n  sync_timeout_s: %u\n"
		   "  cpu_max_percent: %u\n  failback: %s\n  auto_finalize: %s\n",
		c->upgrade_hold_timer_s, c->upgrade_sync_timeout_s,
		c->upgrade_cpu_max_percent, c->upgrade_failback ? "true" : "false",
		c->upgrade_auto_finalize ? "true" : "false");
	fputs("api:\n  http: ", f);
	emit_opt(f, c->api_http, false);
	fputs("\n  token_file: ", f);
	emit_str(f, c->api_token_file, false);
	fputs("\n  tls_cert: ", f);
	emit_opt(f, c->api_tls_cert, false);
	fputs("\n  tls_key: ", f);
	emit_opt(f, c->api_tls_key, false);
	fputs("\n  images_dir: ", f);
	emit_str(f, c->api_images_dir, false);
	fputs("\n  probe_file: ", f);
	emit_opt(f, c->api_probe_file, false);
	fputc('\n', f);
	return ferror(f) ? TND_EIO : TND_OK;
}

/* ------------------------------------------------------------------ */
/* Lookups. */

int conf_node_index(const struct tnd_conf *c, const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < c->n_nodes && i < TND_NODES_MAX; i++)
		if (!strcmp(c->nodes[i].name, name))
			return i;
	return -1;
}

int conf_group_index(const struct tnd_conf *c, int group_id)
{
	for (int i = 0; i < c->n_groups && i < TND_GROUPS_MAX; i++)
		if (c->groups[i].id == group_id)
			return i;
	return -1;
}

const char *conf_addr_str(const struct tnd_addr *a, char *buf, size_t len)
{
	if (!buf || len == 0)
		return "";
	if ((a->family != AF_INET && a->family != AF_INET6) ||
	    !inet_ntop(a->family, a->bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}
