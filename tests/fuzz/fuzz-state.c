// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for state.json's parser (state_from_json), which reads what a crash, a full
 * disk or an administrator's editor left behind. Besides memory errors, the harness checks the
 * documented contract: the result is 0, -EINVAL (some entries dropped), -EBADMSG (nothing read,
 * nothing kept) or -ENOMEM; every failure has a one-line reason; and whatever parsed, whole or
 * in part, is what state_save() would write and reads back to the same document, so a restart
 * after a recovery never loses or changes what was recovered.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vendor-rules.h"
#include "core/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *error = NULL, *error2 = NULL, *text = NULL, *again = NULL;
	struct state s = {}, back = {};
	int r;

	partition_schemes_set(backend_partition_schemes);
	r = state_from_json((const char *)data, size, &s, &error);
	if (r != 0 && r != -EINVAL && r != -EBADMSG && r != -ENOMEM)
		abort();
	if (r == 0 && error)
		abort(); /* written on failure only */
	if ((r == -EINVAL || r == -EBADMSG) && (!error || !error[0] || strchr(error, '\n')))
		abort();
	if (r == -EBADMSG && (s.ledger.n > 0 || s.n_applied > 0))
		abort();

	if (r == 0 || r == -EINVAL) {
		text = state_to_json(&s);
		if (!text)
			abort(); /* parsed but would not save: a restart would lose it */
		if (state_from_json(text, strlen(text), &back, &error2) != 0) {
			fprintf(stderr, "saved document does not load back: %s\n%s\n", error2,
				text);
			abort();
		}
		if (back.ledger.n != s.ledger.n || back.n_applied != s.n_applied)
			abort();
		again = state_to_json(&back);
		if (!again || strcmp(again, text) != 0) {
			fprintf(stderr, "round trip changed the document:\n%s\n---\n%s\n", text,
				again ?: "(null)");
			abort();
		}
	}
	state_done(&back);
	state_done(&s);
	return 0;
}
