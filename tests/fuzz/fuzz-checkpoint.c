// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for kubelet's device checkpoint parser (kubelet_checkpoint_parse), which
 * reads a file another program writes. Besides memory errors, the harness checks the contract:
 * 0 or -EBADMSG (with a reason) or -ENOMEM; every entry has its three names and at least one
 * id, no id twice.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/checkpoint.h"
#include "shared/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kubelet_entry *e = NULL;
	char *error = NULL;
	size_t n = 0;
	int r;

	r = kubelet_checkpoint_parse((const char *)data, size, &e, &n, &error);
	if (r != 0 && r != -EBADMSG && r != -ENOMEM)
		abort();
	if (r == -EBADMSG && !error)
		abort();
	free(error);
	if (r < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!e[i].pod_uid || !e[i].container || !e[i].resource || !e[i].ids || !e[i].ids[0])
			abort();
		for (char **a = e[i].ids; *a; a++)
			for (char **b = a + 1; *b; b++)
				if (strcmp(*a, *b) == 0)
					abort();
	}
	kubelet_entries_free(e, n);
	return 0;
}
