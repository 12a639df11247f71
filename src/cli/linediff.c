/* linediff.c - unified line diff with Myers' algorithm; see linediff.h. */
#include "linediff.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/types.h"

/* One line: its bytes in the text, the '\n' included when present. */
struct ld_line {
	size_t off, len;
	uint32_t hash;
};

struct ld_text {
	const char *t;
	size_t n;
	struct ld_line *l;
};

enum { OP_EQ = '=', OP_DEL = '-', OP_ADD = '+' };

static size_t count_lines(const char *t, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += t[i] == '\n';
	return n + (len > 0 && t[len - 1] != '\n');
}

/* FNV-1a: only a filter before memcmp, so any spread will do. */
static uint32_t hash_bytes(const char *p, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static void split_lines(const char *t, size_t len, struct ld_line *l)
{
	size_t start = 0, n = 0;

	for (size_t i = 0; i < len; i++) {
		if (t[i] != '\n' && i + 1 < len)
			continue;
		l[n].off = start;
		l[n].len = i + 1 - start;
		l[n].hash = hash_bytes(t + start, l[n].len);
		n++;
		start = i + 1;
	}
}

static bool line_eq(const struct ld_text *a, size_t i, const struct ld_text *b, size_t j)
{
	const struct ld_line *x = &a->l[i], *y = &b->l[j];

	return x->hash == y->hash && x->len == y->len &&
	       memcmp(a->t + x->off, b->t + y->off, x->len) == 0;
}

static bool has_newline(const struct ld_text *x, size_t i)
{
	return x->l[i].len > 0 && x->t[x->l[i].off + x->l[i].len - 1] == '\n';
}

/* Entries of the rows 0..d-1 of the trace: row d holds V[k] for
 * k = -d, -d+2, ..., d at index (k + d) / 2. */
static size_t row_base(long d)
{
	return (size_t)d * (size_t)(d + 1) / 2;
}

struct ld_myers {
	const struct ld_text *a, *b;
	size_t p;      /* common head length: the middle starts here */
	long n, m;     /* middle lengths */
	int32_t *v;    /* the trace */
	size_t v_cap;  /* entries allocated */
	size_t mem_left_bytes;
	size_t work, work_max;
};

static bool mid_eq(struct ld_myers *my, long x, long y)
{
	my->work++;
	return line_eq(my->a, my->p + (size_t)x, my->b, my->p + (size_t)y);
}

/* Make room for row d. false: over the memory bound (or out of memory). */
static bool trace_grow(struct ld_myers *my, long d)
{
	size_t need = row_base(d + 1), cap;
	int32_t *nv;

	if (need <= my->v_cap)
		return true;
	cap = my->v_cap ? my->v_cap * 2 : 1024;
	if (cap < need)
		cap = need;
	if (cap > my->mem_left_bytes / sizeof *my->v)
		cap = my->mem_left_bytes / sizeof *my->v;
	if (cap < need)
		return false;
	nv = realloc(my->v, cap * sizeof *nv);
	if (!nv)
		return false;
	my->v = nv;
	my->v_cap = cap;
	return true;
}

/* The forward pass. Returns D (edits of a shortest script) or -1 when a
 * bound was hit. */
static long myers_forward(struct ld_myers *my)
{
	for (long d = 0; d <= my->n + my->m; d++) {
		if (!trace_grow(my, d))
			return -1;
		int32_t *row = my->v + row_base(d);
		const int32_t *prev = d ? my->v + row_base(d - 1) : NULL;

		for (long k = -d; k <= d; k += 2) {
			long x, y;

			if (d == 0)
				x = 0;
			else if (k == -d || (k != d && prev[(k - 1 + d - 1) / 2] < prev[(k + 1 + d - 1) / 2]))
				x = prev[(k + 1 + d - 1) / 2];      /* down: a line of b added */
			else
				x = prev[(k - 1 + d - 1) / 2] + 1;  /* right: a line of a deleted */
			y = x - k;
			while (x < my->n && y < my->m && mid_eq(my, x, y)) {
				x++;
				y++;
			}
			if (my->work > my->work_max)
				return -1;
			row[(k + d) / 2] = (int32_t)x;
			if (x >= my->n && y >= my->m)
				return d;
		}
	}
	return -1; /* not reached: d = n + m always ends */
}

/* Walk the trace back from (n, m), writing the middle's operations
 * backwards into rev; returns how many. */
static size_t myers_back(const struct ld_myers *my, long dmax, char *rev)
{
	long x = my->n, y = my->m;
	size_t r = 0;

	for (long d = dmax; d > 0; d--) {
		const int32_t *prev = my->v + row_base(d - 1);
		long k = x - y, pk, px, py, mx, my_;
		bool down = k == -d || (k != d && prev[(k - 1 + d - 1) / 2] < prev[(k + 1 + d - 1) / 2]);

		pk = down ? k + 1 : k - 1;
		px = prev[(pk + d - 1) / 2];
		py = px - pk;
		mx = down ? px : px + 1;
		my_ = down ? py + 1 : py;
		while (x > mx && y > my_) {
			rev[r++] = OP_EQ;
			x--;
			y--;
		}
		rev[r++] = down ? OP_ADD : OP_DEL;
		x = px;
		y = py;
	}
	while (x > 0 && y > 0) {
		rev[r++] = OP_EQ;
		x--;
		y--;
	}
	return r;
}

/* Within each run of changes, deletions first: the lines involved stay
 * the same and the hunk reads like diff(1)'s. */
static void group_changes(char *ops, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t s = i, del = 0;

		if (ops[i] == OP_EQ) {
			i++;
			continue;
		}
		while (i < n && ops[i] != OP_EQ)
			del += ops[i++] == OP_DEL;
		memset(ops + s, OP_DEL, del);
		memset(ops + s + del, OP_ADD, i - s - del);
	}
}

static void print_line(FILE *f, char prefix, const struct ld_text *x, size_t i)
{
	fputc(prefix, f);
	fwrite(x->t + x->l[i].off, 1, x->l[i].len, f);
	if (!has_newline(x, i))
		fputs("\n\\ No newline at end of file\n", f);
}

static void print_range(FILE *f, char side, size_t start, size_t count)
{
	/* An empty range names the line before it (0 at the top). */
	if (count == 0)
		fprintf(f, "%c%zu,0", side, start);
	else if (count == 1)
		fprintf(f, "%c%zu", side, start + 1);
	else
		fprintf(f, "%c%zu,%zu", side, start + 1, count);
}

static void print_unified(FILE *f, const struct ld_text *a, const struct ld_text *b,
			  const char *ops, size_t nops, size_t ctx)
{
	size_t cur = 0, i = 0, j = 0; /* op index and the lines it stands at */
	size_t c = 0;

	for (;;) {
		size_t hs, he, e, ca = 0, cb = 0;

		while (c < nops && ops[c] == OP_EQ)
			c++;
		if (c >= nops)
			break;
		/* Extend over changes separated by at most 2 * ctx equal lines. */
		e = c;
		for (;;) {
			size_t r = 0;

			while (e < nops && ops[e] != OP_EQ)
				e++;
			while (e + r < nops && ops[e + r] == OP_EQ)
				r++;
			if (e + r < nops && r <= 2 * ctx) {
				e += r;
				continue;
			}
			he = e + (r < ctx ? r : ctx);
			break;
		}
		hs = c > ctx ? c - ctx : 0;
		if (hs < cur)
			hs = cur;
		for (; cur < hs; cur++) {
			i += ops[cur] != OP_ADD;
			j += ops[cur] != OP_DEL;
		}
		for (size_t o = hs; o < he; o++) {
			ca += ops[o] != OP_ADD;
			cb += ops[o] != OP_DEL;
		}
		fputs("@@ ", f);
		print_range(f, '-', i, ca);
		fputc(' ', f);
		print_range(f, '+', j, cb);
		fputs(" @@\n", f);
		for (; cur < he; cur++) {
			if (ops[cur] == OP_EQ) {
				print_line(f, ' ', a, i++);
				j++;
			} else if (ops[cur] == OP_DEL) {
				print_line(f, '-', a, i++);
			} else {
				print_line(f, '+', b, j++);
			}
		}
		c = he;
	}
}

int linediff_unified(const char *a, size_t a_len, const char *b, size_t b_len,
		     const char *label_a, const char *label_b,
		     const struct linediff_limits *lim, char **out, size_t *out_len,
		     enum linediff_result *res)
{
	size_t mem_max = lim && lim->mem_max_bytes ? lim->mem_max_bytes : LINEDIFF_MEM_MAX_BYTES;
	size_t ctx = lim && lim->context_lines >= 0 ? (size_t)lim->context_lines : LINEDIFF_CONTEXT_LINES;
	struct ld_text ta = { .t = a }, tb = { .t = b };
	struct ld_myers my = { .a = &ta, .b = &tb };
	char *ops = NULL, *rev = NULL;
	size_t nops = 0, s = 0, table_bytes;
	long dmax = -1;
	FILE *f;
	int rc = TND_ENOSPC;

	*out = NULL;
	*out_len = 0;
	my.work_max = lim && lim->work_max ? lim->work_max : LINEDIFF_WORK_MAX;
	if (a_len == b_len && memcmp(a, b, a_len) == 0) {
		*res = LINEDIFF_EQUAL;
		*out = calloc(1, 1);
		return *out ? 0 : TND_ENOSPC;
	}
	f = open_memstream(out, out_len);
	if (!f)
		return TND_ENOSPC;
	fprintf(f, "--- %s\n+++ %s\n", label_a, label_b);

	ta.n = count_lines(a, a_len);
	tb.n = count_lines(b, b_len);
	/* Line tables, the operations and their reversed middle. */
	table_bytes = (ta.n + tb.n) * (sizeof(struct ld_line) + 2);
	if (ta.n + tb.n < INT32_MAX && table_bytes < mem_max) {
		ta.l = malloc((ta.n + 1) * sizeof *ta.l);
		tb.l = malloc((tb.n + 1) * sizeof *tb.l);
		ops = malloc(ta.n + tb.n + 1);
		rev = malloc(ta.n + tb.n + 1);
		if (!ta.l || !tb.l || !ops || !rev)
			goto done;
		split_lines(a, a_len, ta.l);
		split_lines(b, b_len, tb.l);
		while (my.p < ta.n && my.p < tb.n && line_eq(&ta, my.p, &tb, my.p))
			my.p++;
		while (s < ta.n - my.p && s < tb.n - my.p &&
		       line_eq(&ta, ta.n - 1 - s, &tb, tb.n - 1 - s))
			s++;
		my.n = (long)(ta.n - my.p - s);
		my.m = (long)(tb.n - my.p - s);
		my.mem_left_bytes = mem_max - table_bytes;
		dmax = myers_forward(&my);
	}
	if (dmax < 0) {
		fprintf(f, "the texts differ (%zu and %zu lines, the first %zu and the last %zu equal) "
			   "by more changes than a line diff is computed for\n",
			ta.n, tb.n, my.p, s);
		*res = LINEDIFF_SUMMARY;
	} else {
		size_t r = myers_back(&my, dmax, rev);

		memset(ops, OP_EQ, my.p);
		nops = my.p;
		while (r > 0)
			ops[nops++] = rev[--r];
		memset(ops + nops, OP_EQ, s);
		nops += s;
		group_changes(ops, nops);
		print_unified(f, &ta, &tb, ops, nops, ctx);
		*res = LINEDIFF_DIFF;
	}
	rc = 0;
done:
	if (fclose(f) != 0)
		rc = TND_ENOSPC;
	if (rc != 0) {
		free(*out);
		*out = NULL;
		*out_len = 0;
	}
	free(ta.l);
	free(tb.l);
	free(ops);
	free(rev);
	free(my.v);
	return rc;
}
