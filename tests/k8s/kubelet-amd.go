// SPDX-License-Identifier: GPL-2.0-or-later
//
// amd.com/gpu through the device plugin API on the AMD fixture nodes (tests/fixtures/nodes,
// written by tests/fixtures/gen/amd-nodes.py): an MI300X node in SPX (8 GPUs) and in CPX/NPS4
// (8 partitions per GPU, 64 devices). Kubelet must get the resource AMD's own plugin registers,
// every GPU or partition healthy, and for each Allocate what a ROCm container needs: the GPUs
// named in ROCR_VISIBLE_DEVICES (GPU-<unique id> for a whole GPU, the ROCm index for a
// partition), /dev/kfd and exactly the GPU's or partition's own card and render nodes.
package main

import (
	"fmt"
	"strings"

	api "xpu.dev/tests/k8s/v1beta1"
)

const amdResource = "amd.com/gpu"

// The MI300X fixture's GPUs, in PCI order: GPU i has card i+1 and renderD128+i in SPX, and
// its partitions k the nodes 8i+k after those in CPX (the generator numbers them so).
var mi300xGPUs = []string{"0000:0c:00.0", "0000:22:00.0", "0000:38:00.0", "0000:5c:00.0",
	"0000:9f:00.0", "0000:af:00.0", "0000:bf:00.0", "0000:df:00.0"}

// What a container given one device must get.
type amdDevice struct {
	rocr  string   // its ROCR_VISIBLE_DEVICES entry
	nodes []string // its own device nodes (beside /dev/kfd)
	cdi   string   // its CDI device name
}

func amdExpected(node string) (ids []string, want map[string]amdDevice) {
	want = map[string]amdDevice{}
	cdi := strings.NewReplacer(":", "-", "/", "-")
	for g, addr := range mi300xGPUs {
		if node == "mi300x" {
			ids = append(ids, addr)
			want[addr] = amdDevice{fmt.Sprintf("GPU-%016x", 0x4a8e5f0c2d1e3b00+g),
				[]string{fmt.Sprintf("/dev/dri/card%d", 1+g),
					fmt.Sprintf("/dev/dri/renderD%d", 128+g)},
				"xpu.dev/gpu=" + cdi.Replace(addr)}
			continue
		}
		for k := 0; k < 8; k++ {
			id := fmt.Sprintf("%s/cpx-%d", addr, k)
			n := 8*g + k
			ids = append(ids, id)
			want[id] = amdDevice{fmt.Sprint(n),
				[]string{fmt.Sprintf("/dev/dri/card%d", 1+n),
					fmt.Sprintf("/dev/dri/renderD%d", 128+n)},
				"xpu.dev/gpu=" + cdi.Replace(id)}
		}
	}
	return ids, want
}

// checkAMDAllocate asks for @ids in one container and checks the response against @want.
func checkAMDAllocate(c api.DevicePluginClient, ids []string, want map[string]amdDevice) {
	var rocr, cdi []string
	nodes := []string{"/dev/kfd"}
	for _, id := range ids {
		rocr = append(rocr, want[id].rocr)
		nodes = append(nodes, want[id].nodes...)
		cdi = append(cdi, want[id].cdi)
	}
	checkAllocate(c, ids, map[string]string{"ROCR_VISIBLE_DEVICES": strings.Join(rocr, ",")},
		nodes, cdi)
}

// amdNode runs xpud on fixture @node in a tree below @tmp and plays kubelet against it.
func amdNode(xpudBin, mkfixture, tmp, node string) {
	p := runPlugin(xpudBin, mkfixture, tmp, node, amdResource, nil)
	if p == nil {
		return
	}
	defer p.stop()

	ids, want := amdExpected(node)
	check(len(p.first.Devices) == len(ids), "ListAndWatch: %d devices, want %d",
		len(p.first.Devices), len(ids))
	for _, id := range ids {
		check(health(p.first, id) == "Healthy", "ListAndWatch: %s is %q", id,
			health(p.first, id))
	}

	// One device, then two from different GPUs (NUMA nodes 0 and 1) in one container.
	checkAMDAllocate(p.c, ids[:1], want)
	checkAMDAllocate(p.c, []string{ids[len(ids)/4+1], ids[len(ids)-1]}, want)
	_, local := p.h.localAPI("GET", "/v1/allocations", "")
	items, _ := local["allocations"].([]interface{})
	check(len(items) == 2, "both grants recorded with the allocation service: %d", len(items))
}
