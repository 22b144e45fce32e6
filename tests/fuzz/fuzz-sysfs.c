// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The strict parsers every sysfs attribute and configuration value goes through, and the
 * configuration parser itself. The first byte picks the parser, the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vendor-rules.h"
#include "core/config.h"
#include "shared/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, addr[13], *err = NULL;
	struct config c;
	uint64_t u64;
	uint32_t u32;
	unsigned u;
	int i;

	partition_schemes_set(backend_partition_schemes);
	if (size < 1)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 8) {
	case 0:
		(void)safe_atoi(s, &i);
		(void)safe_atou64(s, &u64);
		break;
	case 1:
		(void)parse_hex_id(s, 0xffffff, &u32);
		break;
	case 2:
		(void)parse_pcie_link_speed(s, &u);
		break;
	case 3:
		if (parse_cpu_list(s, &u) == 0 && u == 0)
			abort(); /* a valid list names at least one CPU */
		break;
	case 4:
		if (parse_pci_address(s, addr) == 0 && strlen(addr) != 12)
			abort();
		break;
	case 5:
		(void)parse_duration(s, &u64);
		break;
	case 6: {
		struct offer o = {};

		/* a layout (xpuctl repartition): the partition rules' parser without 'match' */
		if (config_parse_layout(s, strlen(s), &o, &err) < 0) {
			if (!err)
				abort();
		} else if (!offer_kind_to_string(o.kind, o.scheme))
			abort(); /* an accepted layout offers something */
		free(err);
		offer_done(&o);
		break;
	}
	default:
		config_init(&c);
		if (config_parse(s, strlen(s), &c, &err) < 0 && !err)
			abort(); /* every rejection explains itself */
		free(err);
		config_done(&c);
		break;
	}
	free(s);
	return 0;
}
