/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The NVIDIA backend's entry points besides its ops. */
#pragma once

#include <stdio.h>

/*
 * "xpud --cuda-probe LIBRARY": loads the CUDA driver API, runs cuInit and prints what it says of
 * each GPU to @out (the format is private to nvidia-cuda.c). Runs in a short-lived child of xpud
 * so that the daemon never carries CUDA's memory. Returns the exit status.
 */
int nvidia_cuda_probe_main(const char *library, FILE *out);

/* How the core offers NVIDIA GPUs (core/rules.h): MIG, CUDA's MPS limits for memory shares, the
 * merge of CUDA's variables in a grant, the GPU feature labels. backends/nvidia-rules.c. */
#include "backends/vendor-rules.h"
