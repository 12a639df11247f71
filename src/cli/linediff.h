/* linediff.h - a unified line diff of two texts, for `tandemctl config
 * diff` (SPEC section 4).
 *
 * Owns: nothing beyond one call. The output follows the unified format of
 * POSIX `diff -u` (https://pubs.opengroup.org/onlinepubs/9699919799/
 * utilities/diff.html, "Diff -u or -U Output Format"), so `patch` applies
 * it: "--- A" / "+++ B" headers, "@@ -l,s +l,s @@" hunks with `context`
 * unchanged lines around each change, "\ No newline at end of file" after
 * a last line without one. The edit script is a shortest one, found with
 * Myers' O((N+M)D) greedy algorithm ("An O(ND) Difference Algorithm and
 * Its Variations", Algorithmica 1986) after trimming the common head and
 * tail.
 *
 * Bounded: the algorithm keeps every furthest-reaching row to walk back
 * the path, (D+1)(D+2)/2 integers for D edits, and compares at most
 * LINEDIFF_WORK_MAX line pairs. Two texts that would need more memory
 * (LINEDIFF_MEM_MAX_BYTES, line tables included) or more work get a
 * plain summary instead of a diff ("the texts differ: ..."), never an
 * unbounded allocation. */
#ifndef TND_LINEDIFF_H
#define TND_LINEDIFF_H

#include <stddef.h>

#define LINEDIFF_MEM_MAX_BYTES (64u * 1024 * 1024)
#define LINEDIFF_WORK_MAX (300u * 1000 * 1000) /* line comparisons */
#define LINEDIFF_CONTEXT_LINES 3

enum linediff_result {
	LINEDIFF_EQUAL,   /* identical: nothing written */
	LINEDIFF_DIFF,    /* a unified diff was written */
	LINEDIFF_SUMMARY, /* they differ, too much to diff: a summary written */
};

struct linediff_limits {
	size_t mem_max_bytes; /* 0: LINEDIFF_MEM_MAX_BYTES */
	size_t work_max;      /* 0: LINEDIFF_WORK_MAX */
	int context_lines;    /* < 0: LINEDIFF_CONTEXT_LINES */
};

/* Diff text a (labelled label_a) against b (label_b). On success returns 0
 * with *out a new malloc'd NUL-terminated text ("" when equal), *out_len
 * its length and *res what it holds. TND_ENOSPC when memory runs out.
 * `lim` may be NULL (the defaults). */
int linediff_unified(const char *a, size_t a_len, const char *b, size_t b_len,
		     const char *label_a, const char *label_b,
		     const struct linediff_limits *lim, char **out, size_t *out_len,
		     enum linediff_result *res);

#endif
