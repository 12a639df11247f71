/* sysfacts.c - CPU load and free space for the upgrade pre-checks
 * (sysfacts.h says what and why). */
#include "sysfacts.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

static int read_cpu(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[10] = { 0 };
	char line[512];
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return TND_ESYS;
	if (!fgets(line, sizeof line, f)) {
		fclose(f);
		return TND_EIO;
	}
	fclose(f);
	/* cpu user nice system idle iowait irq softirq steal guest guest_nice;
	 * guest time is already counted in user (proc(5)). */
	n = sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	if (n < 4)
		return TND_EINVAL;
	uint64_t idle = v[3] + v[4];
	uint64_t all = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	*busy = all - idle;
	*total = all;
	return 0;
}

void sysfacts_sample(struct sysfacts *f, mono_t now)
{
	uint64_t busy, total;

	if (read_cpu(&busy, &total) != 0)
		return;
	f->head = (f->head + 1) % SYSFACTS_SAMPLES;
	f->s[f->head].at = now;
	f->s[f->head].busy = busy;
	f->s[f->head].total = total;
	if (f->n < SYSFACTS_SAMPLES)
		f->n++;
}

uint8_t sysfacts_cpu_percent(const struct sysfacts *f, mono_t now)
{
	int oldest = -1;

	if (f->n < 2)
		return SYSFACTS_UNKNOWN;
	/* The oldest sample still inside the window (the newest is head). */
	for (int k = 1; k < f->n; k++) {
		int i = (f->head - k + SYSFACTS_SAMPLES) % SYSFACTS_SAMPLES;
		if (now - f->s[i].at > MS_TO_MONO(SYSFACTS_WINDOW_MS + 500))
			break;
		oldest = i;
	}
	if (oldest < 0)
		return SYSFACTS_UNKNOWN;
	const typeof(f->s[0]) *a = &f->s[oldest], *b = &f->s[f->head];
	if (b->at - a->at < MS_TO_MONO(1000) || b->total <= a->total)
		return SYSFACTS_UNKNOWN;
	uint64_t pct = 100 * (b->busy - a->busy) / (b->total - a->total);
	return (uint8_t)(pct > 100 ? 100 : pct);
}

uint64_t sysfacts_free_bytes(const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) != 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}
