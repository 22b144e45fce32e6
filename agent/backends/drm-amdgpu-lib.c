// TEMPORARY local stub (the amdlib branch owns this file)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "backends/drm-internal.h"
void drm_amdgpu_answer_done(struct drm_amdgpu_answer *i)
{
	free(i->marketing_name);
}
int drm_amdgpu_query(const struct xpu_host *host, const char *devname,
		     struct drm_amdgpu_answer *ret, char **ret_reason)
{
	(void)host; (void)devname; (void)ret; (void)ret_reason;
	return -ENOENT;
}
