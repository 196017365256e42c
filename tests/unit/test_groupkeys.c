/* test_groupkeys.c - the writer's conflict rule (clearing/groupkeys.c): two
 * groups are posted side by side only when they share no member and no
 * message id, posted or named by a reverse; a message refused before the
 * database (pre_error) changes no member but its id still counts (its
 * answer is a replay if the other group stores that id). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "clearing/groupkeys.h"
#include "errors.h"

static struct post_item items[8];

static struct post_item *
item(int i, const char *partner, const char *id, const char *member, const char *reverses,
    enum err pre)
{
	struct post_item *it = &items[i];

	memset(it, 0, sizeof(*it));
	snprintf(it->partner, sizeof(it->partner), "%s", partner);
	snprintf(it->id, sizeof(it->id), "%s", id);
	snprintf(it->msg.member, sizeof(it->msg.member), "%s", member);
	snprintf(it->msg.reverses, sizeof(it->msg.reverses), "%s", reverses);
	it->pre_error = pre;
	return it;
}

/* do the groups {a} and {b} conflict? (each a group of one item) */
static int
conflict1(struct post_item *a, struct post_item *b)
{
	json_t *ka = group_keys(&a, 1), *kb = group_keys(&b, 1);
	int c = group_keys_conflict(ka, kb), c2 = group_keys_conflict(kb, ka);

	ck_assert_int_eq(c, c2);
	json_decref(ka);
	json_decref(kb);
	return c;
}

START_TEST(test_members)
{
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_OK),
	    item(1, "globex", "g1", "M1", "", ERR_OK)), 1);
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_OK),
	    item(1, "acme", "a2", "M2", "", ERR_OK)), 0);
	/* member keys are exact: no prefix match, case kept */
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_OK),
	    item(1, "acme", "a2", "M10", "", ERR_OK)), 0);
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "m1", "", ERR_OK),
	    item(1, "acme", "a2", "M1", "", ERR_OK)), 0);
}
END_TEST

START_TEST(test_ids)
{
	/* two copies of one id: one posting and one replay, in order */
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_OK),
	    item(1, "acme", "a1", "M2", "", ERR_OK)), 1);
	/* the same id of two partners is two messages */
	ck_assert_int_eq(conflict1(item(0, "acme", "x1", "M1", "", ERR_OK),
	    item(1, "globex", "x1", "M2", "", ERR_OK)), 0);
	/* a reverse and its original, whoever the members are */
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_OK),
	    item(1, "acme", "r1", "M2", "a1", ERR_OK)), 1);
	ck_assert_int_eq(conflict1(item(0, "acme", "r1", "M1", "a1", ERR_OK),
	    item(1, "acme", "r2", "M2", "a1", ERR_OK)), 1);
	/* a reverse names an id of its own partner only */
	ck_assert_int_eq(conflict1(item(0, "globex", "a1", "M1", "", ERR_OK),
	    item(1, "acme", "r1", "M2", "a1", ERR_OK)), 0);
	/* ids and members never match each other */
	ck_assert_int_eq(conflict1(item(0, "acme", "M1", "X", "", ERR_OK),
	    item(1, "acme", "z", "M1", "", ERR_INVALID_SIGNATURE)), 0);
}
END_TEST

START_TEST(test_pre_error)
{
	/* refused before the database: its member does not count... */
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_INVALID_SIGNATURE),
	    item(1, "acme", "a2", "M1", "", ERR_OK)), 0);
	/* ...nor the original it names... */
	ck_assert_int_eq(conflict1(item(0, "acme", "r1", "M1", "a2", ERR_UNKNOWN_KEY),
	    item(1, "acme", "a2", "M2", "", ERR_OK)), 0);
	/* ...but its id does (it may be a replay of the other group's message) */
	ck_assert_int_eq(conflict1(item(0, "acme", "a1", "M1", "", ERR_INVALID_SIGNATURE),
	    item(1, "acme", "a1", "M2", "", ERR_OK)), 1);
	/* no usable id: nothing but the member, and not even that when refused */
	ck_assert_int_eq(conflict1(item(0, "acme", "", "", "", ERR_MALFORMED_JWS),
	    item(1, "acme", "", "", "", ERR_MALFORMED_JWS)), 0);
}
END_TEST

START_TEST(test_groups)
{
	struct post_item *g1[3], *g2[3];
	json_t *k1, *k2;

	g1[0] = item(0, "acme", "a1", "M1", "", ERR_OK);
	g1[1] = item(1, "acme", "a2", "M2", "", ERR_OK);
	g1[2] = item(2, "globex", "g1", "M3", "", ERR_OK);
	g2[0] = item(3, "acme", "a3", "M4", "", ERR_OK);
	g2[1] = item(4, "globex", "g2", "M5", "", ERR_OK);
	g2[2] = item(5, "globex", "g3", "M6", "", ERR_OK);
	k1 = group_keys(g1, 3);
	k2 = group_keys(g2, 3);
	ck_assert_uint_eq(json_object_size(k1), 6);
	ck_assert_int_eq(group_keys_conflict(k1, k2), 0);
	json_decref(k2);
	/* one shared member anywhere in the larger group is enough */
	g2[2] = item(5, "globex", "g3", "M3", "", ERR_OK);
	k2 = group_keys(g2, 3);
	ck_assert_int_eq(group_keys_conflict(k1, k2), 1);
	ck_assert_int_eq(group_keys_conflict(k2, k1), 1);
	json_decref(k2);
	/* a group of one against a group of three, either way round */
	k2 = group_keys(&g2[0], 1);
	ck_assert_int_eq(group_keys_conflict(k1, k2), 0);
	json_decref(k2);
	json_decref(k1);
	/* an empty group conflicts with nothing */
	k1 = group_keys(NULL, 0);
	ck_assert_uint_eq(json_object_size(k1), 0);
	k2 = group_keys(g2, 3);
	ck_assert_int_eq(group_keys_conflict(k1, k2), 0);
	json_decref(k1);
	json_decref(k2);
}
END_TEST

START_TEST(test_longest_keys)
{
	char p[65], id[65], m[65];

	memset(p, 'p', 64);
	p[64] = '\0';
	memset(id, 'i', 64);
	id[64] = '\0';
	memset(m, 'm', 64);
	m[64] = '\0';
	ck_assert_int_eq(conflict1(item(0, p, id, m, id, ERR_OK), item(1, p, "x", m, "", ERR_OK)), 1);
	ck_assert_int_eq(conflict1(item(0, p, id, "a", "", ERR_OK), item(1, p, "y", "b", id, ERR_OK)), 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("groupkeys");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_members);
	tcase_add_test(tc, test_ids);
	tcase_add_test(tc, test_pre_error);
	tcase_add_test(tc, test_groups);
	tcase_add_test(tc, test_longest_keys);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
