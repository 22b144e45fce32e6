/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The NVIDIA backend's entry points besides its ops. */
#pragma once

/* How the core offers NVIDIA GPUs (core/rules.h): MIG, CUDA's MPS limits for memory shares, the
 * merge of CUDA's variables in a grant, the GPU feature labels. backends/nvidia-rules.c. */
#include "backends/vendor-rules.h"
