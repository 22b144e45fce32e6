// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DRM backend's list of cards (agent/backends/drm-cards.c), which both listers fill in,
 * and the libdrm lister (drm-libdrm.c) on whatever host runs the test: it must agree with the
 * host's /sys/class/drm, and say -ENOENT where there is no DRM device. Its real test, with a
 * DRM driver bound, is in the QEMU guest (tests/vm/run.sh).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/drm-internal.h"

static void test_add_copies(void **state)
{
	struct drm_card_list l = {};
	char driver[] = "amdgpu", card[] = "dri/card1", render[] = "dri/renderD128";
	struct drm_card c = { .address = "0000:c1:00.0", .driver = driver, .card = card,
			      .render = render, .card_minor = 1, .render_minor = 128 };
	struct drm_card platform = { .driver = driver, .render = render, .card_minor = -1,
				     .render_minor = 129 };

	assert_int_equal(drm_card_list_add(&l, &c), 0);
	/* the caller's strings may change or go: the list has its own */
	strcpy(driver, "xxxxxx");
	strcpy(card, "xxxxxxxxx");
	strcpy(render, "dri/renderD129");
	assert_int_equal(drm_card_list_add(&l, &platform), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0].address, "0000:c1:00.0");
	assert_string_equal(l.items[0].driver, "amdgpu");
	assert_string_equal(l.items[0].card, "dri/card1");
	assert_string_equal(l.items[0].render, "dri/renderD128");
	assert_int_equal(l.items[0].card_minor, 1);
	assert_int_equal(l.items[0].render_minor, 128);
	assert_ptr_not_equal(l.items[0].driver, c.driver);
	/* a platform device: no address, no primary node */
	assert_string_equal(l.items[1].address, "");
	assert_string_equal(l.items[1].driver, "xxxxxx");
	assert_null(l.items[1].card);
	assert_string_equal(l.items[1].render, "dri/renderD129");
	assert_int_equal(l.items[1].card_minor, -1);
	assert_int_equal(l.items[1].render_minor, 129);

	drm_card_list_done(&l);
	assert_null(l.items);
	assert_int_equal(l.n, 0);
	drm_card_list_done(&l); /* twice: nothing left to free */
}

/* An MI300X node in CPX mode has 64 render nodes, a big one hundreds: the list grows, every
 * item intact, and is looked up by render minor. */
static void test_many(void **state)
{
	struct drm_card_list l = {};
	char name[32];

	for (int i = 0; i < 1000; i++) {
		struct drm_card c = { .driver = (char *)"amdgpu", .card_minor = -1,
				      .render_minor = 128 + i };

		if (i % 8 == 0) {
			snprintf(c.address, sizeof(c.address), "0000:%02x:00.0", i / 8);
			snprintf(name, sizeof(name), "dri/card%d", i / 8);
			c.card = name;
			c.card_minor = i / 8;
		}
		assert_int_equal(drm_card_list_add(&l, &c), 0);
	}
	assert_int_equal(l.n, 1000);
	for (int i = 0; i < 1000; i++) {
		const struct drm_card *c = drm_card_by_render_minor(&l, 128 + i);

		assert_non_null(c);
		assert_ptr_equal(c, &l.items[i]);
		assert_int_equal(c->render_minor, 128 + i);
		assert_string_equal(c->driver, "amdgpu");
		if (i % 8 == 0) {
			snprintf(name, sizeof(name), "dri/card%d", i / 8);
			assert_string_equal(c->card, name);
			assert_int_equal(c->card_minor, i / 8);
		} else {
			assert_null(c->card);
			assert_string_equal(c->address, "");
		}
	}
	drm_card_list_done(&l);
}

static void test_by_render_minor(void **state)
{
	struct drm_card_list l = {};
	struct drm_card display = { .address = "0000:03:00.0", .driver = (char *)"bochs-drm",
				    .card = (char *)"dri/card0", .card_minor = 0,
				    .render_minor = -1 };
	struct drm_card gpu = { .address = "0000:04:00.0", .driver = (char *)"virtio_gpu",
				.card = (char *)"dri/card1", .render = (char *)"dri/renderD128",
				.card_minor = 1, .render_minor = 128 };

	assert_null(drm_card_by_render_minor(&l, 128));
	assert_null(drm_card_by_render_minor(NULL, 128));
	assert_int_equal(drm_card_list_add(&l, &display), 0);
	assert_int_equal(drm_card_list_add(&l, &gpu), 0);
	assert_string_equal(drm_card_by_render_minor(&l, 128)->address, "0000:04:00.0");
	/* a card without a render node is not the one of minor -1 */
	assert_null(drm_card_by_render_minor(&l, -1));
	assert_null(drm_card_by_render_minor(&l, 129));
	/* minors of primary nodes are not render minors */
	assert_null(drm_card_by_render_minor(&l, 0));
	assert_null(drm_card_by_render_minor(&l, 1));
	drm_card_list_done(&l);
}

/* Whether @name is "card<N>" or "renderD<N>" (the class also has connectors: "card0-DP-1"). */
static bool is_node(const char *name)
{
	const char *p = strncmp(name, "card", 4) == 0	    ? name + 4
			: strncmp(name, "renderD", 7) == 0 ? name + 7
							    : NULL;

	return p && *p && strspn(p, "0123456789") == strlen(p);
}

/* The minor in /sys/class/drm/@node/dev ("226:128"), -1 when unreadable. */
static int sysfs_minor(const char *node)
{
	char path[PATH_MAX];
	unsigned maj, min;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/sys/class/drm/%s/dev", node);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fscanf(f, "%u:%u", &maj, &min);
	fclose(f);
	return n == 2 ? (int)min : -1;
}

/* What this host has: every node libdrm names is in /sys/class/drm with the same minor; no
 * device at all is -ENOENT, and then sysfs has no node either. */
static void test_libdrm_host(void **state)
{
	struct drm_card_list l = {};
	size_t sysfs_nodes = 0, listed = 0;
	struct dirent *e;
	DIR *d;
	int r;

	d = opendir("/sys/class/drm");
	while (d && (e = readdir(d)))
		sysfs_nodes += is_node(e->d_name);
	if (d)
		closedir(d);

	r = drm_list_libdrm(&l);
	if (r == -ENOENT) {
		print_message("no DRM device on this host\n");
		assert_int_equal(sysfs_nodes, 0);
		assert_int_equal(l.n, 0);
		return;
	}
	assert_int_equal(r, 0);
	assert_true(l.n > 0);
	for (size_t i = 0; i < l.n; i++) {
		const struct drm_card *c = &l.items[i];

		print_message("%s %s %s %s\n", c->address[0] ? c->address : "(platform)",
			      c->driver ?: "(no driver)", c->card ?: "-", c->render ?: "-");
		assert_true(c->card || c->render);
		if (c->card) {
			assert_true(strncmp(c->card, "dri/card", 8) == 0);
			assert_int_equal(sysfs_minor(c->card + 4), c->card_minor);
			listed++;
		}
		if (c->render) {
			assert_true(strncmp(c->render, "dri/renderD", 11) == 0);
			assert_int_equal(sysfs_minor(c->render + 4), c->render_minor);
			listed++;
		}
	}
	assert_true(listed <= sysfs_nodes);
	drm_card_list_done(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_copies),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_by_render_minor),
		cmocka_unit_test(test_libdrm_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
