/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The devices a backend offers in a mode that changes only what is offered, not the device:
 * Intel's GPUs tile by tile (drm-intel.c), Neuron devices core by core (accel.c). The backend's
 * apply_offer records the mode on its thread; its enumerations, on the loop, report the device's
 * parts as partitions while it is recorded. Kept for the life of xpud: after a restart the
 * policy's offer is applied again once the device is idle.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>

struct offered_modes {
	pthread_mutex_t lock;
	char **ids; /* the devices offered part by part */
};

void offered_modes_init(struct offered_modes *m);
void offered_modes_done(struct offered_modes *m);
/* Whether device @id is offered part by part (@m may be NULL: never). */
bool offered_modes_get(struct offered_modes *m, const char *id);
/* Records (@on) or forgets device @id. 0, -ENOMEM. */
int offered_modes_set(struct offered_modes *m, const char *id, bool on);
