// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest-side check of the DRM backend's libdrm lister, run by tests/vm/init.sh inside the QEMU
 * guest: calls drm_list_libdrm() (agent/backends/drm-libdrm.c) and prints each device it found,
 * one a line, sorted, for the guest's script to compare with what /sys/class/drm says:
 *
 *   ADDRESS DRIVER CARD CARD_MINOR RENDER RENDER_MINOR
 *
 * ("-" for no address, driver or node; -1 for no minor). With --uid N it first becomes that
 * user (and its group), for which the DRM nodes (root's, mode 0600) cannot be opened. Warnings
 * go to stderr. Exit status 0 with a list, 1 on an error (printed).
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/drm-internal.h"
#include "shared/log.h"

static int card_cmp(const void *a, const void *b)
{
	const struct drm_card *x = a, *y = b;

	/* minors are small (below 2^20): no overflow */
	if (x->card_minor != y->card_minor)
		return x->card_minor - y->card_minor;
	return x->render_minor - y->render_minor;
}

int main(int argc, char **argv)
{
	struct drm_card_list l = {};
	int r;

	log_setup(LOG_TARGET_STDERR);
	if (argc == 3 && strcmp(argv[1], "--uid") == 0) {
		unsigned id = (unsigned)atoi(argv[2]);

		if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 ||
		    setresuid(id, id, id) < 0) {
			perror("xpu-vmdrm: becoming the user");
			return 1;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: xpu-vmdrm [--uid N]\n");
		return 1;
	}
	r = drm_list_libdrm(&l);
	if (r < 0) {
		fprintf(stderr, "xpu-vmdrm: drm_list_libdrm: %s\n", strerror(-r));
		return 1;
	}
	qsort(l.items, l.n, sizeof(*l.items), card_cmp);
	for (size_t i = 0; i < l.n; i++) {
		const struct drm_card *c = &l.items[i];

		printf("%s %s %s %d %s %d\n", c->address[0] ? c->address : "-", c->driver ?: "-",
		       c->card ?: "-", c->card_minor, c->render ?: "-", c->render_minor);
	}
	drm_card_list_done(&l);
	return 0;
}
