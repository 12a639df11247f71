/* test_boot.c - unit tests of the boot record and its decisions
 * (src/core/boot.c): which version a node starts, the counting of the
 * starts of a version on trial, its confirmation, and the revert.
 *
 * The properties that matter: a version on trial is given up after
 * exactly BOOT_TRIES_MAX failed starts, with a reason that says how it
 * failed; the version a revert returns to is always one that was
 * confirmed (an unconfirmed version cannot be replaced); a confirmed
 * version's crash is not retried here (systemd's business); a restart
 * request is always honoured at once; boot.json round-trips exactly and
 * anything malformed or unknown in it is refused with a sentence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/boot.h"

static void test_version_names(void **state)
{
	(void)state;
	assert_true(boot_version_ok("1.0.0"));
	assert_true(boot_version_ok("1.2.0-rc1"));
	assert_true(boot_version_ok("2.0+build_7"));
	assert_false(boot_version_ok(""));
	assert_false(boot_version_ok(NULL));
	assert_false(boot_version_ok("."));
	assert_false(boot_version_ok(".."));
	assert_false(boot_version_ok(".hidden"));
	assert_false(boot_version_ok("-rf"));
	assert_false(boot_version_ok("1.0/../../etc"));
	assert_false(boot_version_ok("1 0"));
	assert_true(boot_version_ok("1234567890123456789012345678901"));   /* 31 bytes: fits */
	assert_false(boot_version_ok("12345678901234567890123456789012"));  /* 32: does not */
}

static void fill(struct boot_state *b)
{
	const char *peers[] = { "gw1", "gw3" };

	boot_init(b, "1.0.0", 1000);
	assert_int_equal(boot_activate(b, "1.1.0", 900, peers, 2, 2000, NULL, 0), 0);
}

static void test_round_trip(void **state)
{
	struct boot_state a, b;
	char *s, why[256];
	size_t len;

	(void)state;
	fill(&a);
	a.tries = 2;
	boot_set_waiting(&a, "peer gw1 alive");
	snprintf(a.last_failure, sizeof a.last_failure, "exited with status 1");
	a.reverted = true;
	snprintf(a.last_revert.from, sizeof a.last_revert.from, "1.2.0");
	snprintf(a.last_revert.to, sizeof a.last_revert.to, "1.0.0");
	snprintf(a.last_revert.reason, sizeof a.last_revert.reason, "a \"quoted\" reason");
	a.last_revert.at_s = 1500;
	assert_int_equal(boot_emit(&a, &s, &len), 0);
	assert_int_equal(s[len - 1], '\n');
	assert_int_equal(boot_parse(s, len, &b, why, sizeof why), 0);
	free(s);
	assert_memory_equal(&a, &b, sizeof a);
	assert_string_equal(b.active, "1.1.0");
	assert_string_equal(b.previous, "1.0.0");
	assert_false(b.confirmed);
	assert_int_equal(b.n_peers, 2);
	assert_string_equal(b.peers[1], "gw3");
	assert_int_equal(b.hold_timer_s, 900);
}

/* Each malformed record is refused, and the sentence names the problem. */
static void test_parse_refusals(void **state)
{
	static const struct {
		const char *json, *says;
	} cases[] = {
		{ "not json", "not JSON" },
		{ "[]", "not a JSON object" },
		{ "{\"format\":\"tandem-boot/2\"}", "tandem-boot/2" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"extra\":1}", "unknown key \"extra\"" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"../x\",\"previous\":\"\",\"confirmed\":true,"
		  "\"tries\":0,\"hold_timer_s\":0,\"expect_peers\":[],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\",\"last_revert\":null}", "\"active\" is not a version" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"previous\":\"1.0.0\",\"confirmed\":true,"
		  "\"tries\":0,\"hold_timer_s\":0,\"expect_peers\":[],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\",\"last_revert\":null}", "both 1.0.0" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"previous\":\"\",\"confirmed\":1,"
		  "\"tries\":0,\"hold_timer_s\":0,\"expect_peers\":[],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\",\"last_revert\":null}", "\"confirmed\" must be" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"previous\":\"\",\"confirmed\":true,"
		  "\"tries\":-1,\"hold_timer_s\":0,\"expect_peers\":[],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\",\"last_revert\":null}", "\"tries\" is -1" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"previous\":\"\",\"confirmed\":true,"
		  "\"tries\":0,\"hold_timer_s\":0,\"expect_peers\":[1],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\",\"last_revert\":null}", "expect_peers[0]" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"previous\":\"\",\"confirmed\":true,"
		  "\"tries\":0,\"hold_timer_s\":0,\"expect_peers\":[],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\"}", "\"last_revert\" is missing" },
		{ "{\"format\":\"tandem-boot/1\",\"active\":\"1.0.0\",\"previous\":\"\",\"confirmed\":true,"
		  "\"tries\":0,\"hold_timer_s\":0,\"expect_peers\":[],\"activated_at\":0,\"confirmed_at\":0,"
		  "\"waiting_for\":\"\",\"last_failure\":\"\",\"last_revert\":{\"from\":\"1\"}}", "\"to\" is missing" },
		{ "{\"format\":\"tandem-boot/1\",\"format\":\"tandem-boot/1\"}", "not JSON" },
	};
	struct boot_state b;
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		why[0] = '\0';
		assert_int_equal(boot_parse(cases[i].json, strlen(cases[i].json), &b, why, sizeof why),
				 TND_EINVAL);
		if (!strstr(why, cases[i].says)) {
			print_error("case %zu: \"%s\" does not say \"%s\"\n", i, why, cases[i].says);
			fail();
		}
	}
}

static void test_activate_rules(void **state)
{
	struct boot_state b;
	char why[256];

	(void)state;
	boot_init(&b, "1.0.0", 10);
	assert_true(b.confirmed);
	assert_int_equal(boot_activate(&b, "1.0.0", 900, NULL, 0, 20, why, sizeof why), TND_EREFUSED);
	assert_non_null(strstr(why, "already the active version"));
	assert_int_equal(boot_activate(&b, "../1", 900, NULL, 0, 20, why, sizeof why), TND_EINVAL);
	assert_int_equal(boot_activate(&b, "1.1.0", 900, NULL, 0, 20, why, sizeof why), 0);
	assert_string_equal(b.active, "1.1.0");
	assert_string_equal(b.previous, "1.0.0");
	assert_false(b.confirmed);
	assert_int_equal(b.tries, 0);
	/* Not started yet: only a plan, replaced by the next activation
	 * (previous stays the confirmed version), cancelled by activating
	 * the previous one. */
	assert_int_equal(boot_activate(&b, "1.3.0", 900, NULL, 0, 21, why, sizeof why), 0);
	assert_string_equal(b.active, "1.3.0");
	assert_string_equal(b.previous, "1.0.0");
	assert_false(b.confirmed);
	assert_int_equal(boot_activate(&b, "1.0.0", 900, NULL, 0, 22, why, sizeof why), 0);
	assert_string_equal(b.active, "1.0.0");
	assert_string_equal(b.previous, "1.3.0");
	assert_true(b.confirmed);
	assert_int_equal(boot_activate(&b, "1.1.0", 900, NULL, 0, 23, why, sizeof why), 0);
	assert_string_equal(b.previous, "1.0.0");
	assert_int_equal(boot_before_start(&b, why, sizeof why), BOOT_START);
	/* Started on trial, it cannot be replaced: the revert target must
	 * stay a confirmed version. */
	assert_int_equal(boot_activate(&b, "1.2.0", 900, NULL, 0, 30, why, sizeof why), TND_EREFUSED);
	assert_non_null(strstr(why, "still on trial"));
	assert_string_equal(b.active, "1.1.0");
	assert_string_equal(b.previous, "1.0.0");
	/* An older process must not confirm the version it is not. */
	assert_int_equal(boot_confirm(&b, "1.0.0", 40), TND_EREFUSED);
	assert_false(b.confirmed);
	assert_int_equal(boot_confirm(&b, "1.1.0", 40), 0);
	assert_true(b.confirmed);
	assert_int_equal(b.confirmed_at_s, 40);
	assert_int_equal(boot_confirm(&b, "1.1.0", 41), TND_ENOENT);
	assert_int_equal(boot_activate(&b, "1.2.0", 60, NULL, 0, 50, why, sizeof why), 0);
	assert_string_equal(b.previous, "1.1.0");
}

static void test_confirmed_start_and_exit(void **state)
{
	struct boot_state b;
	struct boot_exit crash = { .signaled = true, .code = SIGSEGV }, ok = { 0 },
			 restart = { .code = BOOT_EXIT_RESTART };
	uint32_t delay = 99;
	char why[256];

	(void)state;
	boot_init(&b, "1.0.0", 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(boot_before_start(&b, why, sizeof why), BOOT_START);
	assert_int_equal(b.tries, 0); /* a confirmed version is not counted */
	assert_int_equal(boot_after_exit(&b, &crash, false, &delay), BOOT_EXIT);
	assert_int_equal(boot_exit_status(&crash), 128 + SIGSEGV);
	assert_string_equal(b.last_failure, "");
	assert_int_equal(boot_after_exit(&b, &ok, false, &delay), BOOT_EXIT);
	assert_int_equal(boot_after_exit(&b, &restart, false, &delay), BOOT_START);
	assert_int_equal(delay, 0);
	/* Asked to stop, a restart request is not honoured. */
	assert_int_equal(boot_after_exit(&b, &restart, true, &delay), BOOT_EXIT);
	assert_int_equal(boot_exit_status(&restart), BOOT_EXIT_RESTART);
}

/* A version that dies at every start: retried with growing backoff, then
 * given up after exactly BOOT_TRIES_MAX starts, and the record returns to
 * the previous version, confirmed, with the reason. */
static void test_crash_loop_reverts(void **state)
{
	struct boot_state b;
	struct boot_exit e = { .code = 1 };
	uint32_t delay, delays[BOOT_TRIES_MAX];
	char why[BOOT_REASON_LEN];
	int starts = 0;

	(void)state;
	fill(&b);
	for (;;) {
		enum boot_next n = boot_before_start(&b, why, sizeof why);
		if (n == BOOT_REVERT)
			break;
		assert_int_equal(n, BOOT_START);
		starts++;
		assert_int_equal(b.tries, (uint32_t)starts);
		assert_true(starts <= BOOT_TRIES_MAX);
		assert_int_equal(boot_after_exit(&b, &e, false, &delay), BOOT_START);
		delays[starts - 1] = delay;
	}
	assert_int_equal(starts, BOOT_TRIES_MAX);
	assert_int_equal(delays[0], BOOT_BACKOFF_MS_FIRST);
	assert_int_equal(delays[1], 2 * BOOT_BACKOFF_MS_FIRST);
	assert_int_equal(delays[BOOT_TRIES_MAX - 1], 0); /* the last failure: revert at once */
	assert_non_null(strstr(why, "1.1.0 was started 3 times"));
	assert_non_null(strstr(why, "exited with status 1"));
	assert_int_equal(boot_revert(&b, why, 3000, NULL, 0), 0);
	assert_string_equal(b.active, "1.0.0");
	assert_string_equal(b.previous, "1.1.0");
	assert_true(b.confirmed);
	assert_int_equal(b.tries, 0);
	assert_true(b.reverted);
	assert_string_equal(b.last_revert.from, "1.1.0");
	assert_string_equal(b.last_revert.to, "1.0.0");
	assert_string_equal(b.last_revert.reason, why);
	assert_int_equal(b.last_revert.at_s, 3000);
	assert_string_equal(b.last_failure, "");
	/* And the reverted-to version starts normally from then on. */
	assert_int_equal(boot_before_start(&b, why, sizeof why), BOOT_START);
	assert_int_equal(b.tries, 0);
}

static void test_failures_named(void **state)
{
	struct boot_state b;
	struct boot_exit seg = { .signaled = true, .code = SIGSEGV },
			 odd = { .signaled = true, .code = 40 }, clean = { 0 };
	uint32_t delay;
	char why[BOOT_REASON_LEN];

	(void)state;
	fill(&b);
	boot_before_start(&b, why, sizeof why);
	assert_int_equal(boot_after_exit(&b, &seg, false, &delay), BOOT_START);
	assert_string_equal(b.last_failure, "killed by signal SEGV");
	assert_int_equal(boot_after_exit(&b, &odd, false, &delay), BOOT_START);
	assert_string_equal(b.last_failure, "killed by signal 40");
	/* A clean exit of a version on trial ends the supervisor: somebody
	 * stopped it; nothing failed. */
	assert_int_equal(boot_after_exit(&b, &clean, false, &delay), BOOT_EXIT);
	/* While stopping, nothing is retried. */
	assert_int_equal(boot_after_exit(&b, &seg, true, &delay), BOOT_EXIT);
}

static void test_hold_timer(void **state)
{
	struct boot_state b;
	char why[BOOT_REASON_LEN];

	(void)state;
	fill(&b);
	assert_false(boot_hold_expired(&b, 899999, why, sizeof why));
	assert_true(boot_hold_expired(&b, 900000, why, sizeof why));
	assert_string_equal(why, "1.1.0 was not confirmed healthy within hold_timer_s (900 s)");
	assert_true(boot_set_waiting(&b, "peer gw1 alive"));
	assert_false(boot_set_waiting(&b, "peer gw1 alive"));
	assert_true(boot_hold_expired(&b, 900001, why, sizeof why));
	assert_non_null(strstr(why, "it was waiting for peer gw1 alive"));
	b.hold_timer_s = 0; /* no limit */
	assert_false(boot_hold_expired(&b, 1000000000, why, sizeof why));
	b.hold_timer_s = 1;
	boot_confirm(&b, "1.1.0", 5);
	assert_false(boot_hold_expired(&b, 1000000000, why, sizeof why));
	assert_string_equal(b.waiting_for, "");
}

static void test_revert_needs_previous(void **state)
{
	struct boot_state b;
	char why[BOOT_REASON_LEN];

	(void)state;
	boot_init(&b, "1.0.0", 1);
	b.confirmed = false; /* as if damaged: there is nothing to return to */
	assert_int_equal(boot_revert(&b, "x", 2, why, sizeof why), TND_ENOENT);
	assert_non_null(strstr(why, "no previous version"));
	assert_string_equal(b.active, "1.0.0");
	assert_string_equal(boot_role(&b, "1.0.0"), "active");
	assert_string_equal(boot_role(&b, "0.9"), "installed");
	fill(&b);
	assert_string_equal(boot_role(&b, "1.0.0"), "previous");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_names),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_activate_rules),
		cmocka_unit_test(test_confirmed_start_and_exit),
		cmocka_unit_test(test_crash_loop_reverts),
		cmocka_unit_test(test_failures_named),
		cmocka_unit_test(test_hold_timer),
		cmocka_unit_test(test_revert_needs_previous),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
